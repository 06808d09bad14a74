// Package ledger is a counter's state: the distinct item ids of every tenant,
// the round it has prepared, the commit order it has applied and the part of
// it known to be stable. It is a deterministic state machine with no I/O and
// no locking; the counter service serialises calls.
//
// Every id remembers the seq of the round that first added it. That one
// number gives the rest: counts as of any stable seq, snapshots of the rows
// a joining counter lacks (seq > since), and the rows to drop when a round
// that was never stable may have been aborted by a restarted coordinator.
package ledger

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Errors returned to the coordinator; the counter service maps each to a wire code.
var (
	ErrStaleEpoch   = errors.New("request from an older coordinator epoch")
	ErrNotMember    = errors.New("counter has not joined the cluster")
	ErrNotReady     = errors.New("counter has no complete copy of the data")
	ErrBehind       = errors.New("counter has not applied the requested position")
	ErrOutOfOrder   = errors.New("round out of order")
	ErrUnknownRound = errors.New("unknown round")
	ErrSyncMismatch = errors.New("no such sync session")
	// ErrSnapshotStale: the ledger re-joined while a snapshot was served
	// in pieces; its rows may have changed, so the snapshot is cut.
	ErrSnapshotStale = errors.New("snapshot source re-joined")
)

type tenant struct {
	ids     map[string]uint64 // id -> seq of the round that first added it
	visible int64             // ids with seq <= Ledger.visibleAt
}

// pendingRound is a committed round above visibleAt: applied for dedup,
// not yet counted by fenced reads.
type pendingRound struct {
	seq   uint64
	added map[string]int64 // tenant -> ids this round added
}

type stagedRound struct {
	round wire.RoundID
	items []wire.Item
}

// Ledger is one counter's state. The zero value is not usable; call New.
type Ledger struct {
	id, incarnation string

	mode          wire.Mode
	clusterID     string
	epoch         uint64       // highest coordinator epoch of a message accepted
	fence         uint64       // epoch learnt at registration: lower ones are refused
	last          wire.RoundID // last resolved round: every round up to it is committed or aborted here
	lastCommitted bool
	lastCommit    wire.RoundID // last committed round
	staged        *stagedRound

	stableSeen uint64 // highest stable seq any coordinator message announced
	visibleAt  uint64 // tenants' visible counts are the state at this seq
	pending    []pendingRound

	tenants map[string]*tenant
	items   int

	view      []string
	viewRound wire.RoundID

	// Sync session syncID: rows with seq <= since were kept at join, the
	// snapshot brings since < seq <= joinSeq, rounds above joinSeq arrive
	// directly. Each join starts a new session; merges and the finish of
	// any other session are refused.
	syncID         string
	joined         wire.JoinResponse // the answer to the join of syncID
	joinedAt       wire.Decision     // the join point of that join
	since, joinSeq uint64
	// joins counts the joins: the only event that removes rows, which a
	// snapshot served in pieces must not straddle.
	joins uint64
}

// New returns an empty, idle ledger for the counter with the given id and
// incarnation (a fresh random id per process start).
func New(id, incarnation string) *Ledger {
	return &Ledger{id: id, incarnation: incarnation, mode: wire.ModeIdle, tenants: make(map[string]*tenant)}
}

// Status reports the ledger's position, for registration and health checks.
func (l *Ledger) Status() wire.Status {
	st := wire.Status{
		ID:            l.id,
		Incarnation:   l.incarnation,
		Mode:          l.mode,
		ClusterID:     l.clusterID,
		Epoch:         l.epoch,
		Fence:         l.fence,
		Last:          l.last,
		LastCommitted: l.lastCommitted,
		Committed:     l.lastCommit,
		Stable:        l.stableSeen,
		View:          slices.Clone(l.view),
		ViewRound:     l.viewRound,
		Tenants:       len(l.tenants),
		Items:         l.items,
	}
	if l.staged != nil {
		r := l.staged.round
		st.Staged = &r
	}
	return st
}

// checkEpoch refuses messages from an older coordinator, or from one older
// than the fence, and remembers newer ones.
func (l *Ledger) checkEpoch(epoch uint64) error {
	if epoch < l.epoch || epoch < l.fence {
		return fmt.Errorf("%w: got %d, seen %d, fence %d", ErrStaleEpoch, epoch, l.epoch, l.fence)
	}
	l.epoch = epoch
	return nil
}

// AdoptFence raises the fence to epoch, the epoch a coordinator announced
// at registration, and reports whether it rose. From then on every
// message of a lower epoch is refused: a coordinator that was replaced
// can change nothing here, even before its successor's first message.
func (l *Ledger) AdoptFence(epoch uint64) bool {
	if epoch <= l.fence {
		return false
	}
	l.fence = epoch
	return true
}

// Prepare stages a round and votes yes by returning nil. It refuses a round
// that is not the next one after the last resolved round: a gap means this
// counter missed a round and must resync; a seq at or below it is a late or
// duplicated prepare that must not resurrect a decided round.
func (l *Ledger) Prepare(req wire.PrepareRequest) error {
	if err := l.checkEpoch(req.Round.Epoch); err != nil {
		return err
	}
	if l.mode == wire.ModeIdle {
		return ErrNotMember
	}
	if req.Prev != nil {
		l.resolve(*req.Prev)
	}
	if l.staged != nil {
		if l.staged.round == req.Round {
			return nil // duplicated prepare: same vote
		}
		return fmt.Errorf("%w: round %s still undecided, got prepare %s", ErrOutOfOrder, l.staged.round, req.Round)
	}
	if req.Round.Seq != l.last.Seq+1 {
		return fmt.Errorf("%w: last resolved %s, got prepare %s", ErrOutOfOrder, l.last, req.Round)
	}
	l.staged = &stagedRound{round: req.Round, items: req.Items}
	l.view, l.viewRound = slices.Clone(req.View), req.Round
	l.observeStable(req.Stable)
	return nil
}

// Commit applies the staged round. It is idempotent: a commit of a round
// already resolved here succeeds again, so the coordinator may retry.
func (l *Ledger) Commit(req wire.DecisionRequest) error {
	if err := l.checkEpoch(req.Round.Epoch); err != nil {
		return err
	}
	if l.mode == wire.ModeIdle {
		return ErrNotMember
	}
	switch {
	case l.staged != nil && l.staged.round == req.Round:
		l.resolve(wire.Decision{Round: req.Round, Commit: true})
	case req.Round.Seq <= l.last.Seq:
		// Already resolved: a retried commit whose first answer was lost.
	default:
		return fmt.Errorf("%w: commit %s, last resolved %s", ErrUnknownRound, req.Round, l.last)
	}
	l.observeStable(req.Stable)
	return nil
}

// Abort drops the staged round. An abort of the next round that never
// arrived as a prepare still moves the last resolved round on, so a prepare
// delivered late is refused.
func (l *Ledger) Abort(req wire.DecisionRequest) error {
	if err := l.checkEpoch(req.Round.Epoch); err != nil {
		return err
	}
	if l.mode == wire.ModeIdle {
		return nil
	}
	switch {
	case l.staged != nil && l.staged.round == req.Round:
		l.resolve(wire.Decision{Round: req.Round})
	case l.staged == nil && req.Round.Seq == l.last.Seq+1:
		l.last, l.lastCommitted = req.Round, false
	}
	l.observeStable(req.Stable)
	return nil
}

// resolve applies a decision to the staged round if it is the one decided.
func (l *Ledger) resolve(d wire.Decision) {
	if l.staged == nil || l.staged.round != d.Round {
		return
	}
	items := l.staged.items
	l.staged = nil
	l.last, l.lastCommitted = d.Round, d.Commit
	if !d.Commit {
		return
	}
	l.lastCommit = d.Round
	added := make(map[string]int64)
	for _, it := range items {
		t := l.tenant(it.Tenant)
		if _, ok := t.ids[it.ID]; ok {
			continue // counted once, by the round that first added it
		}
		t.ids[it.ID] = d.Round.Seq
		added[it.Tenant]++
		l.items++
	}
	if len(added) > 0 {
		l.pending = append(l.pending, pendingRound{seq: d.Round.Seq, added: added})
	}
	l.promote()
}

func (l *Ledger) tenant(name string) *tenant {
	t, ok := l.tenants[name]
	if !ok {
		t = &tenant{ids: make(map[string]uint64)}
		l.tenants[name] = t
	}
	return t
}

// observeStable records a stable seq announced by the coordinator.
func (l *Ledger) observeStable(stable uint64) {
	if stable > l.stableSeen {
		l.stableSeen = stable
	}
	l.promote()
}

// promote makes every pending round at or below the stable seq visible.
// Only rounds this counter has applied can be promoted, so visible counts
// are always the state at one seq of the commit order.
func (l *Ledger) promote() {
	upto := min(l.stableSeen, l.last.Seq)
	if upto <= l.visibleAt {
		return
	}
	n := 0
	for ; n < len(l.pending) && l.pending[n].seq <= upto; n++ {
		for name, k := range l.pending[n].added {
			l.tenants[name].visible += k
		}
	}
	l.pending = l.pending[n:]
	l.visibleAt = upto
}

// Count answers a fenced read: the tenant's count as of a stable seq at
// least fence. It refuses when this counter has not applied that far, so a
// counter that missed writes never serves a stale count.
func (l *Ledger) Count(epoch, fence uint64, tenantID string) (int64, error) {
	if err := l.checkEpoch(epoch); err != nil {
		return 0, err
	}
	if l.mode != wire.ModeReady {
		return 0, ErrNotReady
	}
	at := max(fence, l.stableSeen)
	if l.last.Seq < at {
		return 0, fmt.Errorf("%w: applied %d, read at %d", ErrBehind, l.last.Seq, at)
	}
	l.observeStable(at)
	if t, ok := l.tenants[tenantID]; ok {
		return t.visible, nil
	}
	return 0, nil
}

// LocalCount is the tenant's count including every round applied here,
// stable or not: a counter's own view, for operators and tests. The
// coordinator never serves it to clients.
func (l *Ledger) LocalCount(tenantID string) (count int64, last wire.RoundID, err error) {
	if l.mode != wire.ModeReady {
		return 0, l.last, ErrNotReady
	}
	t, ok := l.tenants[tenantID]
	if !ok {
		return 0, l.last, nil
	}
	return int64(len(t.ids)), l.last, nil
}

// IDs returns the sorted ids the counter holds for a tenant, stable or not.
func (l *Ledger) IDs(tenantID string) []string {
	t, ok := l.tenants[tenantID]
	if !ok {
		return nil
	}
	ids := make([]string, 0, len(t.ids))
	for id := range t.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Join puts the ledger into the coordinator's write set at the join point
// req.Last. A counter whose last committed round is the cluster's holds the
// cluster's data already (rounds after it were aborts, which carry none):
// it is complete. Any other keeps the rows it can prove are in the
// cluster's history (seq <= since: all it committed, when the same
// coordinator epoch decided its last commit; its stable rows otherwise) and
// needs a snapshot of since < seq <= req.Committed.Seq; rounds after the
// join point reach it as a participant meanwhile.
//
// A round staged here and not the join point's round is dropped: it was
// undecided by an earlier coordinator, and a restarted coordinator presumes
// abort for every round no counter has committed.
func (l *Ledger) Join(req wire.JoinRequest) (wire.JoinResponse, error) {
	if err := l.checkEpoch(req.Epoch); err != nil {
		return wire.JoinResponse{}, err
	}
	if req.SyncID != "" && req.SyncID == l.syncID && req.Last == l.joinedAt {
		// A duplicate of the join that opened this session: the same
		// answer, and the rows merged since are not truncated again.
		return l.joined, nil
	}
	if req.Epoch == l.last.Epoch && req.Last.Round.Seq < l.last.Seq {
		// Within an epoch a counter never gets ahead of its coordinator:
		// this join was sent before rounds this counter has since applied,
		// and arrives late.
		return wire.JoinResponse{}, fmt.Errorf("%w: join at %s, already at %s", ErrOutOfOrder, req.Last.Round, l.last)
	}
	if l.staged != nil && req.Epoch == l.staged.round.Epoch && req.Last.Round.Seq < l.staged.round.Seq {
		// The same holds for the round it has voted on: dropping it for
		// this join would lose a vote the coordinator may be committing.
		return wire.JoinResponse{}, fmt.Errorf("%w: join at %s, already prepared %s", ErrOutOfOrder, req.Last.Round, l.staged.round)
	}
	// A staged round that is the cluster's last committed round was
	// decided commit, though this counter never heard: apply it. When its
	// every voter missed the commit and the rounds after it aborted, the
	// voters are the only copies of it, and without this none of them
	// would ever be complete.
	l.resolve(wire.Decision{Round: req.Committed, Commit: true})
	l.resolve(req.Last)
	l.staged = nil
	l.joins++

	empty := l.items == 0 && l.lastCommit.IsZero()
	sameCluster := l.clusterID == req.ClusterID || (l.clusterID == "" && empty)
	l.last, l.lastCommitted = req.Last.Round, req.Last.Commit
	l.joinSeq = req.Last.Round.Seq
	l.syncID, l.joinedAt = req.SyncID, req.Last
	if sameCluster && (l.mode == wire.ModeReady || empty) && l.lastCommit == req.Committed {
		l.clusterID = req.ClusterID
		l.mode = wire.ModeReady
		l.since = req.Committed.Seq
		l.observeStable(req.Stable)
		l.joined = wire.JoinResponse{Incarnation: l.incarnation, Complete: true, Since: l.since}
		return l.joined, nil
	}

	// keep is the seq up to which this counter's rows are certainly part of
	// the cluster's history.
	var keep uint64
	switch {
	case !sameCluster:
	case l.mode == wire.ModeReady && l.lastCommit.Epoch == req.Committed.Epoch && l.lastCommit.Seq <= req.Committed.Seq:
		// Its last commit was decided by the coordinator that decided the
		// cluster's: one coordinator, contiguous rounds, the same history.
		keep = l.lastCommit.Seq
	case l.mode == wire.ModeReady:
		// Rounds of an older epoch above the stable seq may have been
		// aborted by a restarted coordinator; stable ones never are.
		keep = l.visibleAt
	case l.mode == wire.ModeSyncing:
		keep = l.since
	}
	if keep > req.Committed.Seq {
		keep = 0 // a stable prefix longer than the cluster's history is not ours to keep
	}
	l.truncate(keep)
	l.clusterID = req.ClusterID
	l.mode = wire.ModeSyncing
	l.lastCommit = req.Committed // what the snapshot and the rounds after the join point make true
	l.since = keep
	l.stableSeen = max(l.stableSeen, req.Stable)
	l.joined = wire.JoinResponse{Incarnation: l.incarnation, Since: keep}
	return l.joined, nil
}

// truncate drops every row added after seq keep and recounts.
func (l *Ledger) truncate(keep uint64) {
	for name, t := range l.tenants {
		for id, seq := range t.ids {
			if seq > keep {
				delete(t.ids, id)
			}
		}
		if len(t.ids) == 0 {
			delete(l.tenants, name)
		}
	}
	l.pending = nil
	l.visibleAt = keep
	l.items = 0
	for _, t := range l.tenants {
		t.visible = int64(len(t.ids))
		l.items += len(t.ids)
	}
}

// Merge adds snapshot rows to the sync session syncID, which joined at
// joinSeq. Rows may arrive in any number of calls; a row already present
// keeps the lower seq, so merging commutes with rounds applied meanwhile.
func (l *Ledger) Merge(syncID string, joinSeq uint64, rows []wire.SnapshotEntry) error {
	if err := l.inSession(syncID, joinSeq); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	for _, r := range rows {
		if r.Seq <= l.since || r.Seq > l.joinSeq || r.Tenant == "" || r.ID == "" {
			return fmt.Errorf("%w: row %q/%q at seq %d outside (%d, %d]", ErrSyncMismatch, r.Tenant, r.ID, r.Seq, l.since, l.joinSeq)
		}
		t := l.tenant(r.Tenant)
		if seq, ok := t.ids[r.ID]; !ok || r.Seq < seq {
			t.ids[r.ID] = r.Seq
		}
	}
	return nil
}

// inSession checks that syncID at joinSeq is the sync session under way.
func (l *Ledger) inSession(syncID string, joinSeq uint64) error {
	if l.mode != wire.ModeSyncing || syncID != l.syncID || joinSeq != l.joinSeq {
		return fmt.Errorf("%w: session %q at join point %d", ErrSyncMismatch, syncID, joinSeq)
	}
	return nil
}

// FinishSync ends the sync session syncID, which joined at joinSeq: the
// ledger now holds every round up to its last one and may serve reads.
func (l *Ledger) FinishSync(syncID string, joinSeq uint64) error {
	if err := l.inSession(syncID, joinSeq); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	l.recount()
	l.mode = wire.ModeReady
	return nil
}

// recount rebuilds visible counts and pending rounds from the rows' seqs.
func (l *Ledger) recount() {
	l.visibleAt = min(l.stableSeen, l.last.Seq)
	bySeq := make(map[uint64]map[string]int64)
	l.items = 0
	for name, t := range l.tenants {
		t.visible = 0
		for _, seq := range t.ids {
			if seq <= l.visibleAt {
				t.visible++
				continue
			}
			if bySeq[seq] == nil {
				bySeq[seq] = make(map[string]int64)
			}
			bySeq[seq][name]++
		}
		l.items += len(t.ids)
	}
	l.pending = l.pending[:0]
	for seq, added := range bySeq {
		l.pending = append(l.pending, pendingRound{seq: seq, added: added})
	}
	slices.SortFunc(l.pending, func(a, b pendingRound) int { return cmp.Compare(a.seq, b.seq) })
}

// Snapshot returns the rows with since < seq <= upto, for a joining counter,
// at once. Only a ready counter that has applied up to upto can serve it.
func (l *Ledger) Snapshot(since, upto uint64) ([]wire.SnapshotEntry, error) {
	c, err := l.StartSnapshot(since, upto)
	if err != nil {
		return nil, err
	}
	rows, _, err := l.NextSnapshot(c, math.MaxInt, nil)
	return rows, err
}

// SnapshotCursor is a snapshot served in pieces, tenant by tenant, with
// the ledger free to apply rounds in between: rows with seq <= upto never
// change then, except by a join, which cuts the snapshot.
type SnapshotCursor struct {
	since, upto uint64
	joins       uint64
	tenants     []string
}

// StartSnapshot begins a snapshot of the rows with since < seq <= upto.
// Only a ready counter that has applied up to upto can serve it.
func (l *Ledger) StartSnapshot(since, upto uint64) (*SnapshotCursor, error) {
	if l.mode != wire.ModeReady {
		return nil, ErrNotReady
	}
	if l.last.Seq < upto {
		return nil, fmt.Errorf("%w: applied %d, snapshot up to %d", ErrBehind, l.last.Seq, upto)
	}
	c := &SnapshotCursor{since: since, upto: upto, joins: l.joins, tenants: make([]string, 0, len(l.tenants))}
	for name := range l.tenants {
		c.tenants = append(c.tenants, name)
	}
	return c, nil
}

// NextSnapshot appends the rows of the cursor's next tenants to rows,
// whole tenants until it has added at least maxRows, and reports whether
// the snapshot is complete. The caller holds the ledger only this long.
func (l *Ledger) NextSnapshot(c *SnapshotCursor, maxRows int, rows []wire.SnapshotEntry) ([]wire.SnapshotEntry, bool, error) {
	if l.mode != wire.ModeReady || l.joins != c.joins {
		return rows, false, ErrSnapshotStale
	}
	start := len(rows)
	for len(c.tenants) > 0 && len(rows)-start < maxRows {
		name := c.tenants[0]
		c.tenants = c.tenants[1:]
		t, ok := l.tenants[name]
		if !ok {
			continue
		}
		for id, seq := range t.ids {
			if seq > c.since && seq <= c.upto {
				rows = append(rows, wire.SnapshotEntry{Tenant: name, ID: id, Seq: seq})
			}
		}
	}
	return rows, len(c.tenants) == 0, nil
}
