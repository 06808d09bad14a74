// Package ledger is a counter's state: the distinct item ids of every tenant,
// the round it has prepared, the commit order it has applied and the part of
// it known to be stable. It is a deterministic state machine kept on disk
// in Pebble (see store.go), with no locking: the counter service
// serialises calls. A committed round is durable before Commit returns.
//
// Every id remembers the seq of the round that first added it. That one
// number gives the rest: counts as of any stable seq, snapshots of the rows
// a joining counter lacks (seq > since), and the rows to drop when a round
// that was never stable may have been aborted by a restarted coordinator.
package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

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

// pendingRound is a committed round above visibleAt: applied for dedup,
// not yet counted by fenced reads.
type pendingRound struct {
	seq   uint64
	added map[string]int64 // tenant -> ids this round added
}

type stagedRound struct {
	round wire.RoundID
	items []wire.Item
	vote  wire.Vote
	// fresh are the items found new at prepare, deduplicated; still new
	// at commit if the ledger was ready then and has not joined since
	// (only merges, in a sync, and joins change rows between two rounds).
	fresh []wire.Item
	ready bool
	joins uint64
}

// Options configure Open.
type Options struct {
	// Incarnation names this start of the process (a fresh random id each).
	Incarnation string
	// ID is the identity given to a new data directory; empty means a
	// random one. A directory that exists keeps the identity it has.
	ID string
	// NoSync writes commits without waiting for the disk: an acknowledged
	// round may then be lost in a power cut or a kill of the host. It
	// exists to measure what durability costs, never for production.
	NoSync bool
	Logger *slog.Logger
	// ObserveSync, when set, is told how long each synced write took (a
	// committed round, a join, a fence): what the disk costs a round.
	ObserveSync func(time.Duration)
}

// Ledger is one counter's state. Its rows (every id, with the seq of the
// round that added it, and each tenant's count) live on disk; the heap
// holds only the position, the staged round and the few committed rounds
// not yet stable.
type Ledger struct {
	db          *pebble.DB
	ids         *idFilter            // which id keys may be on disk: most lookups end here
	scan        *filterScan          // fills ids with what was on disk at Open; nil for a new directory
	commit      *pebble.WriteOptions // how a commit is written: synced unless NoSync
	logger      *slog.Logger
	observeSync func(time.Duration)

	id, incarnation string

	mode wire.Mode
	// member is false from Open until the first join: a restarted counter
	// holds its data (its mode says how complete it is), but takes no
	// round and serves no read until the coordinator has re-joined it.
	member        bool
	clusterID     string
	epoch         uint64       // highest coordinator epoch of a message accepted
	fence         uint64       // epoch learnt at registration: lower ones are refused
	last          wire.RoundID // last resolved round: every round up to it is committed or aborted here
	lastCommitted bool
	lastCommit    wire.RoundID // last committed round
	// holds is the last committed round through which the rows on disk
	// are a complete copy of the cluster's history: lastCommit while
	// ready; while syncing, what the counter held when it joined (zero
	// when that join dropped some of it). It is what a restarted
	// coordinator may resume from (Status.Holds), even when a sync was
	// cut by a crash.
	holds  wire.RoundID
	staged *stagedRound

	stableSeen uint64 // highest stable seq any coordinator message announced
	visibleAt  uint64 // fenced reads count the rows with seq <= visibleAt
	pending    []pendingRound

	items, tenants int

	view      []string
	viewRound wire.RoundID

	// Sync session syncID: rows with seq <= since were kept at join, the
	// snapshot brings since < seq <= joinSeq, rounds above joinSeq arrive
	// directly. Each join starts a new session; merges and the finish of
	// any other session are refused.
	syncID string
	joined wire.JoinResponse // the answer to the join of syncID
	// blind: the session started from no rows (a new or wiped counter, a
	// full snapshot). Its merges write rows without looking them up and
	// count them per tenant in blindCounts; FinishSync reconciles (see
	// Merge). installs counts the snapshot streams of the session
	// (BeginInstall): unless there was exactly one, rows may have been
	// merged twice, and FinishSync recounts every tenant from the ids.
	blind          bool
	blindCounts    map[string]int64
	installs       int
	joinedAt       wire.Decision // the join point of that join
	since, joinSeq uint64
	// joins counts the joins: the only event that removes rows, which a
	// snapshot served in pieces must not straddle.
	joins uint64
}

// Open opens the ledger kept in dir on fs, creating it (with a new
// identity) when dir holds none. A ledger that was ready comes back ready
// with every round it acknowledged; the round it had staged is gone (it was
// never durable), so the coordinator re-joins it and sends only the rounds
// it missed. Damage the engine cannot repair fails Open.
func Open(fs vfs.FS, dir string, opts Options) (*Ledger, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := openDB(fs, dir, logger)
	if err != nil {
		return nil, err
	}
	m, found, err := loadMeta(db)
	if err == nil && !found {
		m = meta{Version: metaVersion, ID: opts.ID, Mode: wire.ModeIdle}
		if m.ID == "" {
			m.ID = uuid.NewString()
		}
		err = db.Set(metaKey, encodeMeta(m), pebble.Sync)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ledger in %s: %w", dir, err)
	}
	l := &Ledger{
		db: db, commit: pebble.Sync, logger: logger, observeSync: opts.ObserveSync, id: m.ID, incarnation: opts.Incarnation,
		mode: m.Mode, clusterID: m.ClusterID, epoch: m.Epoch, fence: m.Fence,
		last: m.Last, lastCommitted: m.LastCommitted, lastCommit: m.LastCommit, holds: m.Holds,
		stableSeen: m.Stable, since: m.Since, items: m.Items, tenants: m.Tenants,
	}
	if opts.NoSync {
		l.commit = pebble.NoSync
	}
	if err := l.rebuildPending(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ledger in %s: %w", dir, err)
	}
	if found {
		// Sized by the count on disk, but filled by a scan whatever the
		// count says: a sync cut by a crash leaves ids it has not counted.
		l.ids = newIDFilter(m.Items, false)
		l.scan = scanIDs(db, l.ids, logger)
	} else {
		l.ids = newIDFilter(0, true) // a new data directory holds no id
	}
	return l, nil
}

// Close stops the ledger's background work and closes its files.
func (l *Ledger) Close() error {
	l.stopScan()
	return l.db.Close()
}

// stopScan ends the scan of Open, if one runs.
func (l *Ledger) stopScan() {
	if l.scan != nil {
		l.scan.stop()
		l.scan = nil
	}
}

// ID is the ledger's identity, kept in its data directory.
func (l *Ledger) ID() string { return l.id }

// state is the persisted part of the ledger as it is now.
func (l *Ledger) state() meta {
	return meta{
		Version: metaVersion, ID: l.id, ClusterID: l.clusterID, Mode: l.mode,
		Epoch: l.epoch, Fence: l.fence, Last: l.last, LastCommitted: l.lastCommitted, LastCommit: l.lastCommit, Holds: l.holds,
		Stable: l.stableSeen, Since: l.since, Items: l.items, Tenants: l.tenants,
	}
}

// write commits b with the meta record m.
func (l *Ledger) write(b *pebble.Batch, m meta, opts *pebble.WriteOptions) error {
	defer b.Close()
	if err := b.Set(metaKey, encodeMeta(m), nil); err != nil {
		return err
	}
	start := time.Now()
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("write the ledger: %w", err)
	}
	if opts.Sync && l.observeSync != nil {
		l.observeSync(time.Since(start))
	}
	return nil
}

// rebuildPending recomputes the committed rounds above the stable seq
// from the seq index.
func (l *Ledger) rebuildPending() error {
	l.visibleAt = min(l.stableSeen, l.last.Seq)
	l.pending = l.pending[:0]
	if l.visibleAt == math.MaxUint64 {
		return nil
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: seqBound(l.visibleAt + 1), UpperBound: []byte{prefixSeq + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		seq, tenantID, _, err := parseSeqKey(it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		if n := len(l.pending); n == 0 || l.pending[n-1].seq != seq {
			l.pending = append(l.pending, pendingRound{seq: seq, added: make(map[string]int64)})
		}
		l.pending[len(l.pending)-1].added[tenantID]++
	}
	return it.Close()
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
		Holds:         l.holds,
		Stable:        l.stableSeen,
		View:          slices.Clone(l.view),
		ViewRound:     l.viewRound,
		Tenants:       l.tenants,
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
// The fence is on disk before AdoptFence returns, so a restart keeps it.
func (l *Ledger) AdoptFence(epoch uint64) (bool, error) {
	if epoch <= l.fence {
		return false, nil
	}
	m := l.state()
	m.Fence = epoch
	if err := l.write(l.db.NewBatch(), m, pebble.Sync); err != nil {
		return false, err
	}
	l.fence = epoch
	return true, nil
}

// Prepare stages a round and votes yes, with the number of the round's ids
// new to this counter per tenant, or refuses. It refuses a round that is
// not the next one after the last resolved round: a gap means this counter
// missed a round and must resync; a seq at or below it is a late or
// duplicated prepare that must not resurrect a decided round. The staged
// round stays in memory: a counter that restarts has lost it and is
// re-joined, and a round no counter committed is aborted by recovery.
func (l *Ledger) Prepare(req wire.PrepareRequest) (wire.Vote, error) {
	if err := l.checkEpoch(req.Round.Epoch); err != nil {
		return wire.Vote{}, err
	}
	if !l.member {
		return wire.Vote{}, ErrNotMember
	}
	if req.Prev != nil {
		if err := l.resolve(*req.Prev); err != nil {
			return wire.Vote{}, err
		}
	}
	if l.staged != nil {
		if l.staged.round == req.Round {
			return l.staged.vote, nil // duplicated prepare: same vote
		}
		return wire.Vote{}, fmt.Errorf("%w: round %s still undecided, got prepare %s", ErrOutOfOrder, l.staged.round, req.Round)
	}
	if req.Round.Seq != l.last.Seq+1 {
		return wire.Vote{}, fmt.Errorf("%w: last resolved %s, got prepare %s", ErrOutOfOrder, l.last, req.Round)
	}
	vote, fresh, err := l.added(req.Items)
	if err != nil {
		return wire.Vote{}, err
	}
	l.staged = &stagedRound{round: req.Round, items: req.Items, vote: vote, fresh: fresh, ready: l.mode == wire.ModeReady, joins: l.joins}
	l.view, l.viewRound = slices.Clone(req.View), req.Round
	l.observeStable(req.Stable)
	return vote, nil
}

// added counts, per tenant, the items that are new: neither held nor
// earlier in the same round, and returns them.
func (l *Ledger) added(items []wire.Item) (wire.Vote, []wire.Item, error) {
	var vote wire.Vote
	var fresh []wire.Item
	seen := make(map[string]struct{}, len(items))
	for _, it := range items {
		k := idKey(it.Tenant, it.ID)
		if _, dup := seen[string(k)]; dup {
			continue
		}
		seen[string(k)] = struct{}{}
		found, err := l.holdsID(k)
		if err != nil {
			return wire.Vote{}, nil, err
		}
		if found {
			continue
		}
		if vote.Added == nil {
			vote.Added = make(map[string]int64)
		}
		vote.Added[it.Tenant]++
		fresh = append(fresh, it)
	}
	return vote, fresh, nil
}

// Commit applies the staged round, on disk (synced) before it returns. It
// is idempotent: a commit of a round already resolved here succeeds again,
// so the coordinator may retry.
func (l *Ledger) Commit(req wire.DecisionRequest) error {
	if err := l.checkEpoch(req.Round.Epoch); err != nil {
		return err
	}
	if !l.member {
		return ErrNotMember
	}
	l.observeStable(req.Stable)
	switch {
	case l.staged != nil && l.staged.round == req.Round:
		return l.resolve(wire.Decision{Round: req.Round, Commit: true})
	case req.Round.Seq <= l.last.Seq:
		// Already resolved: a retried commit whose first answer was lost.
		return nil
	default:
		return fmt.Errorf("%w: commit %s, last resolved %s", ErrUnknownRound, req.Round, l.last)
	}
}

// Abort drops the staged round. An abort of the next round that never
// arrived as a prepare still moves the last resolved round on, so a prepare
// delivered late is refused. Nothing is written: after a restart the
// counter is re-joined at the coordinator's position anyway.
func (l *Ledger) Abort(req wire.DecisionRequest) error {
	if err := l.checkEpoch(req.Round.Epoch); err != nil {
		return err
	}
	if !l.member {
		return nil
	}
	switch {
	case l.staged != nil && l.staged.round == req.Round:
		if err := l.resolve(wire.Decision{Round: req.Round}); err != nil {
			return err
		}
	case l.staged == nil && req.Round.Seq == l.last.Seq+1:
		l.last, l.lastCommitted = req.Round, false
	}
	l.observeStable(req.Stable)
	return nil
}

// resolve applies a decision to the staged round if it is the one decided.
func (l *Ledger) resolve(d wire.Decision) error {
	if l.staged == nil || l.staged.round != d.Round {
		return nil
	}
	if d.Commit {
		st := l.staged
		items, known := st.items, false
		if st.ready && l.mode == wire.ModeReady && st.joins == l.joins {
			items, known = st.fresh, true // no lookup twice
		}
		if err := l.apply(d.Round, items, known); err != nil {
			return err
		}
	} else {
		l.last, l.lastCommitted = d.Round, false
	}
	l.staged = nil
	return nil
}

// apply writes a committed round: its new ids, the tenants' counts and the
// position, in one batch, synced unless NoSync. Then the memory follows.
// fresh says the items are known to be new and distinct (found so at
// prepare, nothing changed since): no lookup is needed.
func (l *Ledger) apply(round wire.RoundID, items []wire.Item, fresh bool) error {
	b := l.db.NewBatch()
	added := make(map[string]int64)
	seen := make(map[string]struct{}, len(items))
	seq := encodeUint(round.Seq)
	n := 0
	for _, it := range items {
		k := idKey(it.Tenant, it.ID)
		if !fresh {
			if _, dup := seen[string(k)]; dup {
				continue
			}
			seen[string(k)] = struct{}{}
			found, err := l.holdsID(k)
			if err != nil {
				b.Close()
				return err
			}
			if found {
				continue // counted once, by the round that first added it
			}
		}
		l.addID(k)
		_ = b.Set(k, seq, nil)
		_ = b.Set(seqKey(round.Seq, it.Tenant, it.ID), nil, nil)
		added[it.Tenant]++
		n++
	}
	newTenants, err := l.addCounts(b, added)
	if err != nil {
		b.Close()
		return err
	}
	m := l.state()
	m.Last, m.LastCommitted, m.LastCommit = round, true, round
	if l.mode == wire.ModeReady {
		m.Holds = round
	}
	m.Items += n
	m.Tenants += newTenants
	if err := l.write(b, m, l.commit); err != nil {
		return err
	}
	l.last, l.lastCommitted, l.lastCommit, l.holds = round, true, round, m.Holds
	l.items, l.tenants = m.Items, m.Tenants
	if len(added) > 0 {
		l.pending = append(l.pending, pendingRound{seq: round.Seq, added: added})
	}
	l.promote()
	return nil
}

// addCounts adds delta to the tenants' counts in b (a negative delta
// removes) and returns the change in the number of tenants.
func (l *Ledger) addCounts(b *pebble.Batch, delta map[string]int64) (int, error) {
	tenants := 0
	for tenantID, d := range delta {
		if d == 0 {
			continue
		}
		k := countKey(tenantID)
		c, found, err := getUint(l.db, k)
		if err != nil {
			return 0, err
		}
		next := int64(c) + d
		switch {
		case next < 0:
			return 0, fmt.Errorf("%w: count of a tenant below zero", errBadKey)
		case next == 0:
			_ = b.Delete(k, nil)
			tenants--
		default:
			_ = b.Set(k, encodeUint(uint64(next)), nil)
			if !found {
				tenants++
			}
		}
	}
	return tenants, nil
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
	for n < len(l.pending) && l.pending[n].seq <= upto {
		n++
	}
	l.pending = l.pending[n:]
	l.visibleAt = upto
}

// total is the tenant's count of ids on disk, stable or not.
func (l *Ledger) total(tenantID string) (int64, error) {
	c, _, err := getUint(l.db, countKey(tenantID))
	return int64(c), err
}

// Count answers a fenced read: the tenant's count as of a stable seq at
// least fence. It refuses when this counter has not applied that far, so a
// counter that missed writes never serves a stale count.
func (l *Ledger) Count(epoch, fence uint64, tenantID string) (int64, error) {
	n, _, err := l.CountAt(epoch, fence, tenantID)
	return n, err
}

// CountAt is Count, and the stable seq the count is as of: at least fence.
func (l *Ledger) CountAt(epoch, fence uint64, tenantID string) (int64, uint64, error) {
	if err := l.checkEpoch(epoch); err != nil {
		return 0, 0, err
	}
	if !l.serving() {
		return 0, 0, ErrNotReady
	}
	at := max(fence, l.stableSeen)
	if l.last.Seq < at {
		return 0, 0, fmt.Errorf("%w: applied %d, read at %d", ErrBehind, l.last.Seq, at)
	}
	l.observeStable(at)
	n, err := l.total(tenantID)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range l.pending {
		n -= p.added[tenantID]
	}
	return n, l.visibleAt, nil
}

// LocalCount is the tenant's count including every round applied here,
// stable or not: a counter's own view, for operators and tests. The
// coordinator never serves it to clients.
func (l *Ledger) LocalCount(tenantID string) (count int64, last wire.RoundID, err error) {
	if !l.serving() {
		return 0, l.last, ErrNotReady
	}
	n, err := l.total(tenantID)
	return n, l.last, err
}

// IDs returns the sorted ids the counter holds for a tenant, stable or not.
func (l *Ledger) IDs(tenantID string) ([]string, error) {
	p := tenantPrefix(tenantID)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	var ids []string
	for it.First(); it.Valid(); it.Next() {
		_, id, err := parseTenantID(it.Key()[1:])
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, it.Close()
}

// Join puts the ledger into the coordinator's write set at the join point
// req.Last. A counter whose last committed round is the cluster's holds the
// cluster's data already (rounds after it were aborts, which carry none):
// it is complete. Any other keeps the rows it can prove are in the
// cluster's history (seq <= since: all it committed, when the same
// coordinator epoch decided its last commit, or when its last commit is of
// the epoch the current one resumed from, at or before req.Base; its
// stable rows otherwise) and
// needs a snapshot of since < seq <= req.Committed.Seq; rounds after the
// join point reach it as a participant meanwhile. A counter that restarted
// with its data is no exception: it needs only the rounds it missed.
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
	if err := l.resolve(wire.Decision{Round: req.Committed, Commit: true}); err != nil {
		return wire.JoinResponse{}, err
	}
	if err := l.resolve(req.Last); err != nil {
		return wire.JoinResponse{}, err
	}
	l.staged = nil

	empty := l.items == 0 && l.lastCommit.IsZero()
	sameCluster := l.clusterID == req.ClusterID || (l.clusterID == "" && empty)
	readyAt := sameCluster && (l.mode == wire.ModeReady || empty) && l.lastCommit == req.Committed
	// A sync cut by a crash left a complete copy through holds, and maybe
	// rows of rounds after it, which the cluster's history does not have
	// when it resumed from there: they go.
	heldAt := sameCluster && l.mode != wire.ModeReady && !l.holds.IsZero() && l.holds == req.Committed
	if readyAt || heldAt {
		b := l.db.NewBatch()
		items, tenants := l.items, l.tenants
		if heldAt {
			var err error
			if items, tenants, err = l.truncate(b, l.holds.Seq); err != nil {
				b.Close()
				return wire.JoinResponse{}, err
			}
		}
		m := l.state()
		m.ClusterID, m.Mode, m.Since = req.ClusterID, wire.ModeReady, req.Committed.Seq
		m.Last, m.LastCommitted = req.Last.Round, req.Last.Commit
		m.LastCommit, m.Holds = req.Committed, req.Committed
		m.Items, m.Tenants = items, tenants
		if err := l.write(b, m, pebble.Sync); err != nil {
			return wire.JoinResponse{}, err
		}
		l.items, l.tenants, l.lastCommit, l.holds = items, tenants, m.LastCommit, m.Holds
		l.joined = wire.JoinResponse{Incarnation: l.incarnation, Complete: true, Since: req.Committed.Seq}
		l.startSession(req, m)
		if err := l.rebuildPending(); err != nil {
			return wire.JoinResponse{}, err
		}
		l.observeStable(req.Stable)
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
	case l.mode == wire.ModeReady && l.lastCommit.Epoch == req.Base.Epoch && l.lastCommit.Seq <= req.Base.Seq:
		// Its last commit was decided by the coordinator whose history the
		// current one resumed from, at or before the round it resumed at.
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
	b := l.db.NewBatch()
	items, tenants, err := l.truncate(b, keep)
	if err != nil {
		b.Close()
		return wire.JoinResponse{}, err
	}
	m := l.state()
	m.ClusterID, m.Mode, m.Since = req.ClusterID, wire.ModeSyncing, keep
	m.Last, m.LastCommitted = req.Last.Round, req.Last.Commit
	m.LastCommit = req.Committed // what the snapshot and the rounds after the join point make true
	if !sameCluster || keep < l.holds.Seq {
		m.Holds = wire.RoundID{} // part of what it held is gone
	}
	m.Stable = max(m.Stable, req.Stable)
	if !sameCluster {
		m.Stable = req.Stable // another history's stable seq says nothing of this one
	}
	m.Items, m.Tenants = items, tenants
	if err := l.write(b, m, pebble.Sync); err != nil {
		return wire.JoinResponse{}, err
	}
	l.pending, l.visibleAt = nil, keep
	l.items, l.tenants = items, tenants
	if keep == 0 {
		// No id key is left on disk: an empty filter is complete, and a
		// scan of the old one has nothing left to do.
		l.stopScan()
		l.ids = newIDFilter(0, true)
	}
	l.lastCommit, l.holds, l.stableSeen = req.Committed, m.Holds, m.Stable
	l.joined = wire.JoinResponse{Incarnation: l.incarnation, Since: keep}
	l.startSession(req, m)
	if keep == 0 {
		l.blind, l.blindCounts = true, make(map[string]int64)
	}
	return l.joined, nil
}

// serving reports whether the ledger may answer reads and snapshots: it
// has joined since it was opened, and holds a complete copy.
func (l *Ledger) serving() bool { return l.member && l.mode == wire.ModeReady }

// startSession sets the position of a join written as m.
func (l *Ledger) startSession(req wire.JoinRequest, m meta) {
	l.joins++
	l.blind, l.blindCounts, l.installs = false, nil, 0
	l.member = true
	l.clusterID, l.mode, l.since = m.ClusterID, m.Mode, m.Since
	l.last, l.lastCommitted = m.Last, m.LastCommitted
	l.joinSeq = req.Last.Round.Seq
	l.syncID, l.joinedAt = req.SyncID, req.Last
}

// truncate deletes in b every row added after seq keep and returns the
// number of items and tenants left.
func (l *Ledger) truncate(b *pebble.Batch, keep uint64) (items, tenants int, err error) {
	if keep == math.MaxUint64 {
		return l.items, l.tenants, nil
	}
	if keep == 0 {
		// Everything goes, counts too: three range deletions, whatever
		// state an interrupted session left them in.
		for _, p := range []byte{prefixCount, prefixID, prefixSeq} {
			if err := b.DeleteRange([]byte{p}, []byte{p + 1}, nil); err != nil {
				return 0, 0, err
			}
		}
		return 0, 0, nil
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: seqBound(keep + 1), UpperBound: []byte{prefixSeq + 1}})
	if err != nil {
		return 0, 0, err
	}
	removed := make(map[string]int64)
	n := 0
	for it.First(); it.Valid(); it.Next() {
		_, tenantID, id, err := parseSeqKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, 0, err
		}
		_ = b.Delete(it.Key(), nil)
		_ = b.Delete(idKey(tenantID, id), nil)
		removed[tenantID]--
		n++
	}
	if err := it.Close(); err != nil {
		return 0, 0, err
	}
	dt, err := l.addCounts(b, removed)
	return l.items - n, l.tenants + dt, err
}

// Merge adds snapshot rows to the sync session syncID, which joined at
// joinSeq. Rows may arrive in any number of calls, and again (a transfer
// that is retried); a row already present keeps the lower seq, so merging
// commutes with rounds applied meanwhile. Merges are written without a
// sync: FinishSync syncs them all at once, and a counter that restarts
// before that is joined again.
//
// A session that started from no rows (blind) writes each row without
// looking it up, which is what makes a full snapshot fast: a source sends
// each id once, with its lowest seq, so the only rows it can meet are
// those of rounds applied since the join (higher seqs), which FinishSync
// drops, recounting every tenant once.
func (l *Ledger) Merge(syncID string, joinSeq uint64, rows []wire.SnapshotEntry) error {
	if err := l.inSession(syncID, joinSeq); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	for _, r := range rows {
		if r.Seq <= l.since || r.Seq > l.joinSeq || r.Tenant == "" || r.ID == "" {
			return fmt.Errorf("%w: row %q/%q at seq %d outside (%d, %d]", ErrSyncMismatch, r.Tenant, r.ID, r.Seq, l.since, l.joinSeq)
		}
	}
	if l.blind {
		b := l.db.NewBatch()
		defer b.Close()
		for _, r := range rows {
			k := idKey(r.Tenant, r.ID)
			l.addID(k)
			_ = b.Set(k, encodeUint(r.Seq), nil)
			_ = b.Set(seqKey(r.Seq, r.Tenant, r.ID), nil, nil)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		for _, r := range rows {
			l.blindCounts[r.Tenant]++
		}
		return nil
	}
	b := l.db.NewBatch()
	inBatch := make(map[string]uint64, len(rows))
	added := make(map[string]int64)
	n := 0
	for _, r := range rows {
		k := idKey(r.Tenant, r.ID)
		seq, found := inBatch[string(k)]
		if !found && l.mayHoldID(k) {
			var err error
			if seq, found, err = getUint(l.db, k); err != nil {
				b.Close()
				return err
			}
		}
		if found && seq <= r.Seq {
			continue
		}
		if found {
			_ = b.Delete(seqKey(seq, r.Tenant, r.ID), nil)
		} else {
			added[r.Tenant]++
			n++
		}
		l.addID(k)
		_ = b.Set(k, encodeUint(r.Seq), nil)
		_ = b.Set(seqKey(r.Seq, r.Tenant, r.ID), nil, nil)
		inBatch[string(k)] = r.Seq
	}
	dt, err := l.addCounts(b, added)
	if err != nil {
		b.Close()
		return err
	}
	m := l.state()
	m.Items += n
	m.Tenants += dt
	if err := l.write(b, m, pebble.NoSync); err != nil {
		return err
	}
	l.items, l.tenants = m.Items, m.Tenants
	return nil
}

// BeginInstall tells the sync session syncID, which joined at joinSeq,
// that a snapshot stream begins. A session may get several (a transfer
// that failed is retried from the start).
func (l *Ledger) BeginInstall(syncID string, joinSeq uint64) error {
	if err := l.inSession(syncID, joinSeq); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	l.installs++
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
// ledger now holds every round up to its last one and may serve reads. The
// merged rows and the new mode are on disk (synced) when it returns.
func (l *Ledger) FinishSync(syncID string, joinSeq uint64) error {
	if err := l.inSession(syncID, joinSeq); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	m := l.state()
	m.Mode, m.Holds = wire.ModeReady, l.lastCommit
	b := l.db.NewBatch()
	if l.blind {
		var err error
		if m.Items, m.Tenants, err = l.reconcile(b); err != nil {
			b.Close()
			return err
		}
	}
	if err := l.write(b, m, pebble.Sync); err != nil {
		return err
	}
	l.mode, l.blind, l.holds = wire.ModeReady, false, m.Holds
	l.items, l.tenants = m.Items, m.Tenants
	return l.rebuildPending()
}

// reconcile ends a blind session in b: it drops the seq-index entries of
// rounds applied since the join whose ids the snapshot brought with a
// lower seq (those rounds counted them too), and writes every tenant's
// count, returning the number of items and tenants.
func (l *Ledger) reconcile(b *pebble.Batch) (items, tenants int, err error) {
	delta := l.blindCounts
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: seqBound(l.joinSeq + 1), UpperBound: []byte{prefixSeq + 1}})
	if err != nil {
		return 0, 0, err
	}
	for it.First(); it.Valid(); it.Next() {
		seq, tenantID, id, err := parseSeqKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, 0, err
		}
		if first, _, err := getUint(l.db, idKey(tenantID, id)); err != nil || first != seq {
			if err != nil {
				_ = it.Close()
				return 0, 0, err
			}
			_ = b.Delete(it.Key(), nil)
			delta[tenantID]--
		}
	}
	if err := it.Close(); err != nil {
		return 0, 0, err
	}
	if l.installs == 1 {
		// One stream: every merged row was new, but for those dropped above.
		dt, err := l.addCounts(b, delta)
		if err != nil {
			return 0, 0, err
		}
		n := 0
		for _, d := range delta {
			n += int(d)
		}
		return l.items + n, l.tenants + dt, nil
	}
	counts := make(map[string]uint64)
	if it, err = l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixID}, UpperBound: []byte{prefixID + 1}}); err != nil {
		return 0, 0, err
	}
	for it.First(); it.Valid(); it.Next() {
		tenantID, _, err := parseTenantID(it.Key()[1:])
		if err != nil {
			_ = it.Close()
			return 0, 0, err
		}
		counts[tenantID]++
		items++
	}
	if err := it.Close(); err != nil {
		return 0, 0, err
	}
	if err := b.DeleteRange([]byte{prefixCount}, []byte{prefixCount + 1}, nil); err != nil {
		return 0, 0, err
	}
	for tenantID, n := range counts {
		_ = b.Set(countKey(tenantID), encodeUint(n), nil)
	}
	return items, len(counts), nil
}

// Snapshot returns the rows with since < seq <= upto, for a joining counter,
// at once. Only a ready counter that has applied up to upto can serve it.
func (l *Ledger) Snapshot(since, upto uint64) ([]wire.SnapshotEntry, error) {
	c, err := l.StartSnapshot(since, upto)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rows, _, err := c.Next(math.MaxInt, nil)
	return rows, err
}

// SnapshotCursor is a snapshot served in pieces from a consistent engine
// snapshot taken at its start, in seq order: the ledger is free to apply
// rounds meanwhile, and its lock is not needed to read the rows.
type SnapshotCursor struct {
	joins uint64
	snap  *pebble.Snapshot
	iter  *pebble.Iterator
	done  bool
}

// StartSnapshot begins a snapshot of the rows with since < seq <= upto.
// Only a ready counter that has applied up to upto can serve it. The
// caller closes the cursor.
func (l *Ledger) StartSnapshot(since, upto uint64) (*SnapshotCursor, error) {
	if !l.serving() {
		return nil, ErrNotReady
	}
	if l.last.Seq < upto {
		return nil, fmt.Errorf("%w: applied %d, snapshot up to %d", ErrBehind, l.last.Seq, upto)
	}
	c := &SnapshotCursor{joins: l.joins, snap: l.db.NewSnapshot()}
	if since >= upto {
		c.done = true
		return c, nil
	}
	it, err := c.snap.NewIter(&pebble.IterOptions{LowerBound: seqBound(since + 1), UpperBound: seqBound(upto + 1)})
	if err != nil {
		_ = c.snap.Close()
		return nil, err
	}
	c.iter = it
	c.done = !it.First()
	return c, nil
}

// CheckSnapshot reports ErrSnapshotStale when the ledger re-joined since the
// cursor started: a join may drop rows, and the snapshot must not outlive
// the membership it was taken in.
func (l *Ledger) CheckSnapshot(c *SnapshotCursor) error {
	if !l.serving() || l.joins != c.joins {
		return ErrSnapshotStale
	}
	return nil
}

// Next appends at most maxRows further rows to rows and reports whether
// the snapshot is complete. It reads the engine snapshot only, so it needs
// no lock; a cursor is used by one goroutine.
func (c *SnapshotCursor) Next(maxRows int, rows []wire.SnapshotEntry) ([]wire.SnapshotEntry, bool, error) {
	for n := 0; !c.done && n < maxRows; n++ {
		seq, tenantID, id, err := parseSeqKey(c.iter.Key())
		if err != nil {
			return rows, false, err
		}
		rows = append(rows, wire.SnapshotEntry{Tenant: tenantID, ID: id, Seq: seq})
		c.done = !c.iter.Next()
	}
	if c.done && c.iter != nil {
		if err := c.iter.Error(); err != nil {
			return rows, false, err
		}
	}
	return rows, c.done, nil
}

// Close releases the engine snapshot.
func (c *SnapshotCursor) Close() {
	if c.iter != nil {
		_ = c.iter.Close()
		c.iter = nil
	}
	if c.snap != nil {
		_ = c.snap.Close()
		c.snap = nil
	}
}
