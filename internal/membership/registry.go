// Package membership is the coordinator's record of who is in the cluster
// and how well: each counter's state (syncing, live, dead), its health-check
// history, and the transitions between states. The Registry does no I/O and
// reads no clock: the coordinator service feeds it events. The Monitor runs
// the health checks, through the Prober and the clock it is given.
package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrStaleSync reports an event for a sync that has since been superseded.
var ErrStaleSync = errors.New("sync superseded")

// State is a counter's place in the cluster.
type State string

// Counter states.
const (
	// Syncing: being brought up to date. Once it has joined it receives
	// every round, but it serves no reads and does not count as live.
	Syncing State = "syncing"
	// Live: up to date; takes part in rounds and serves reads.
	Live State = "live"
	// Dead: gets nothing until it answers again and resyncs.
	Dead State = "dead"
)

// Member is a snapshot of one counter's record.
type Member struct {
	ID          string
	Incarnation string
	State       State
	// Joined: in the write set (syncing members join before their snapshot).
	Joined bool
	// Installed: holds a complete copy up to its join point.
	Installed bool
	// Gen numbers the member's syncs; events of an older sync are ignored.
	Gen      uint64
	Applied  uint64
	Failures int
	// LastCheck and LastError describe the last health check; ErrorKind
	// names LastError's kind in words that reveal no address (ErrorKind).
	LastCheck time.Time
	LastError string
	ErrorKind string
	// Synced tells whether a sync finished; SyncRows and SyncSince describe
	// the last one: the rows it received, all with seq above SyncSince.
	Synced    bool
	SyncRows  int
	SyncSince uint64
}

// Event kinds: the transitions of a member's record.
const (
	EventRegistered = "registered" // a counter the registry did not know
	EventSyncing    = "syncing"    // a known counter restarted or came back, and is resynced
	EventSynced     = "synced"     // its sync brought it the rows it lacked
	EventLive       = "live"       // it took part in a committed round, or was the only holder
	EventDead       = "dead"       // it failed a call or a health check
	EventRemoved    = "removed"    // dead for RecoveryTries more checks
)

// Event is one transition of a member's record.
type Event struct {
	At     time.Time
	ID     string
	Kind   string
	Detail string
}

// MaxEvents is how many of the latest events the registry keeps.
const MaxEvents = 100

// Registry holds the members. It is safe for concurrent use.
type Registry struct {
	recoveryTries int
	maxMembers    int
	now           func() time.Time // stamps events only

	mu      sync.Mutex
	members map[string]*Member
	gen     uint64
	events  []Event // a ring of the latest MaxEvents; next is where the next goes
	next    int
}

// New returns an empty registry that removes a dead counter after
// recoveryTries further failed health checks, and holds at most
// maxMembers counters. now stamps its events.
func New(recoveryTries, maxMembers int, now func() time.Time) *Registry {
	return &Registry{recoveryTries: recoveryTries, maxMembers: maxMembers, now: now, members: make(map[string]*Member)}
}

// record adds an event; the caller holds the lock.
func (r *Registry) record(id, kind, detail string) {
	e := Event{At: r.now(), ID: id, Kind: kind, Detail: detail}
	if len(r.events) < MaxEvents {
		r.events = append(r.events, e)
		return
	}
	r.events[r.next] = e
	r.next = (r.next + 1) % MaxEvents
}

// Events returns the latest events, newest first.
func (r *Registry) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Event, 0, len(r.events))
	for i := range r.events {
		// r.next is the oldest once the ring is full (0 before).
		out = append(out, r.events[(r.next+len(r.events)-1-i)%len(r.events)])
	}
	return out
}

// Full reports whether the registry holds as many counters as it may.
func (r *Registry) Full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members) >= r.maxMembers
}

// StartSync begins a (re)sync of a counter: new, restarted, dead, or
// found to have lost its state. It returns the sync's generation, or false
// when a sync of this incarnation is already under way, or the counter is
// new and the registry full.
func (r *Registry) StartSync(id, incarnation string) (gen uint64, started bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	if ok && m.State == Syncing && m.Incarnation == incarnation {
		return 0, false
	}
	if !ok && len(r.members) >= r.maxMembers {
		return 0, false
	}
	switch {
	case !ok:
		m = &Member{ID: id}
		r.members[id] = m
		r.record(id, EventRegistered, "")
	case m.State == Dead:
		r.record(id, EventSyncing, "answers again")
	case m.Incarnation != incarnation:
		r.record(id, EventSyncing, "restarted")
	default:
		r.record(id, EventSyncing, "lost its data")
	}
	r.gen++
	m.Incarnation = incarnation
	m.State = Syncing
	m.Joined, m.Installed = false, false
	m.Gen = r.gen
	m.Failures = 0
	m.LastError, m.ErrorKind = "", "" // it answered: that is why it is synced
	return m.Gen, true
}

// current returns the member if gen is its current sync, locked by the caller.
func (r *Registry) current(id string, gen uint64) (*Member, error) {
	m, ok := r.members[id]
	if !ok || m.Gen != gen || m.State != Syncing {
		return nil, fmt.Errorf("%w: %s gen %d", ErrStaleSync, id, gen)
	}
	return m, nil
}

// Joined records that the counter entered the write set at joinSeq.
// complete says it needs no snapshot.
func (r *Registry) Joined(id string, gen, joinSeq uint64, complete bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.current(id, gen)
	if err != nil {
		return err
	}
	m.Joined, m.Installed = true, complete
	m.Applied = joinSeq
	return nil
}

// Installed records that the counter holds its snapshot.
func (r *Registry) Installed(id string, gen uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.current(id, gen)
	if err != nil {
		return err
	}
	m.Installed = true
	return nil
}

// SyncDone records what sync gen of counter id received: rows with seq
// above since (no rows when it held the data already).
func (r *Registry) SyncDone(id string, gen uint64, rows int, since uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, err := r.current(id, gen); err == nil {
		m.Synced, m.SyncRows, m.SyncSince = true, rows, since
		r.record(id, EventSynced, fmt.Sprintf("%d rows above seq %d", rows, since))
	}
}

// PromoteAlone makes an installed syncing counter live without a round,
// which is allowed only when no counter is live (then no live counter can
// be missing it from its view) and it holds every committed round: it
// applied up to committedSeq. Rounds after that were aborted, and carry no
// data: a barrier aborted when the last live counter died does not hold
// it back.
func (r *Registry) PromoteAlone(id string, gen, committedSeq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.current(id, gen)
	if err != nil || !m.Joined || !m.Installed || m.Applied < committedSeq || r.liveLocked() > 0 {
		return false
	}
	m.State = Live
	r.record(id, EventLive, "the only holder")
	return true
}

// RoundDone records which members committed round seq. Installed syncing
// members among them become live: they took part in a committed round, so
// every live counter's view names them.
func (r *Registry) RoundDone(seq uint64, acked []string) (promoted []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range acked {
		m, ok := r.members[id]
		if !ok || m.State == Dead {
			continue
		}
		m.Applied = max(m.Applied, seq)
		if m.State == Syncing && m.Joined && m.Installed {
			m.State = Live
			promoted = append(promoted, id)
			r.record(id, EventLive, fmt.Sprintf("in round %d", seq))
		}
	}
	return promoted
}

// InSync reports whether gen is the member's sync under way.
func (r *Registry) InSync(id string, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.current(id, gen)
	return err == nil
}

// IsLive reports whether the member is live in sync generation gen.
func (r *Registry) IsLive(id string, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	return ok && m.Gen == gen && m.State == Live
}

// Fail marks a live or syncing member dead: it did not answer, refused, or
// was found behind. It keeps its failure count.
func (r *Registry) Fail(id string) (changed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	if !ok || m.State == Dead {
		return false
	}
	m.State = Dead
	m.Joined = false
	r.record(id, EventDead, "failed a call")
	return true
}

// FailSync marks the member dead if gen is still its current sync.
func (r *Registry) FailSync(id string, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.current(id, gen); err != nil {
		return false
	}
	m := r.members[id]
	m.State, m.Joined = Dead, false
	r.record(id, EventDead, "its sync failed")
	return true
}

// ProbeFailed records a failed health check: a live or syncing member dies;
// a dead one that has now failed recoveryTries more checks is removed.
func (r *Registry) ProbeFailed(id string, now time.Time, err error) (state State, removed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	if !ok {
		return "", false
	}
	m.LastCheck, m.LastError, m.ErrorKind = now, err.Error(), ErrorKind(err)
	if m.State != Dead {
		m.State, m.Joined, m.Failures = Dead, false, 0
		r.record(id, EventDead, "health check: "+m.ErrorKind)
		return Dead, false
	}
	m.Failures++
	if m.Failures >= r.recoveryTries {
		delete(r.members, id)
		r.record(id, EventRemoved, fmt.Sprintf("after %d failed checks", m.Failures))
		return Dead, true
	}
	return Dead, false
}

// ProbeOK records a successful health check of a counter reporting
// incarnation and whether it holds complete data. It returns true when the
// counter must be (re)synced: it was dead, it restarted, or a live counter
// lost its data.
func (r *Registry) ProbeOK(id string, now time.Time, incarnation string, ready bool, applied uint64) (needsSync bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	if !ok {
		return false
	}
	m.LastCheck, m.LastError, m.ErrorKind = now, "", ""
	m.Failures = 0
	switch {
	case m.State == Dead:
		return true
	case m.Incarnation != incarnation:
		return true
	case m.State == Live && !ready:
		return true
	}
	if m.State == Live {
		m.Applied = max(m.Applied, applied)
	}
	return false
}

// NeedsSync reports whether a registration from this incarnation should
// start a sync: the counter is unknown, dead, or restarted.
func (r *Registry) NeedsSync(id, incarnation string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	return !ok || m.State == Dead || m.Incarnation != incarnation
}

// WriteSet returns the members that take part in the next round: live
// ones and syncing ones that have joined.
func (r *Registry) WriteSet() []Member {
	return r.filter(func(m *Member) bool { return m.State == Live || (m.State == Syncing && m.Joined) })
}

// Live returns the live members, the only ones that serve reads and snapshots.
func (r *Registry) Live() []Member {
	return r.filter(func(m *Member) bool { return m.State == Live })
}

func (r *Registry) liveLocked() int {
	n := 0
	for _, m := range r.members {
		if m.State == Live {
			n++
		}
	}
	return n
}

// List returns every member, sorted by id.
func (r *Registry) List() []Member {
	return r.filter(func(*Member) bool { return true })
}

// Get returns one member.
func (r *Registry) Get(id string) (Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

func (r *Registry) filter(keep func(*Member) bool) []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Member
	for _, m := range r.members {
		if keep(m) {
			out = append(out, *m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ErrorKind names the kind of a failed call in words that reveal no
// address, host or message of the peer, for the public status: an error
// that knows its kind says it (a Kind method, as remote.Error has), else a
// timeout, a refused or reset connection, an unknown host, or unreachable.
func ErrorKind(err error) string {
	var k interface{ Kind() string }
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &k):
		return k.Kind()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &dns):
		return "unknown host"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "unreachable"
}
