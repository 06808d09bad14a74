// Package twopc is the coordinator's side of two-phase commit: one committer
// loop that gives every round a place in one total order of commits, merges
// the items of concurrent requests into one round (group commit), and tracks
// the stable watermark that fences reads. It knows nothing of HTTP; the
// participants and the membership arrive as interfaces.
package twopc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Outcomes a caller of Submit branches on.
var (
	// ErrUnavailable: too few live counters to run a round; nothing was applied.
	ErrUnavailable = errors.New("too few live counters")
	// ErrAborted: the round was aborted everywhere; nothing was applied.
	ErrAborted = errors.New("round aborted")
	// ErrOutcomeUnknown: the round may or may not be applied. Retrying the
	// same ids is safe: ids deduplicate.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrStopped: the committer is shutting down; nothing was applied.
	ErrStopped = errors.New("committer stopped")
	// ErrOverloaded: the queue of requests is full; nothing was applied.
	ErrOverloaded = errors.New("too many requests waiting for a round")
	// ErrTooLarge: the items can never fit in a round; nothing was applied.
	ErrTooLarge = errors.New("items too large for one round")
	// ErrNotRecorded: the holders of a round could not be recorded before
	// its commit; the round was aborted and nothing was applied.
	ErrNotRecorded = errors.New("the round's holders could not be recorded")
	// ErrRejected: a participant rejected a round's request as malformed
	// (the coordinator's fault, or mismatched configurations); the round
	// was aborted and nothing was applied.
	ErrRejected = errors.New("a counter rejected the round's request")
)

// Round outcomes, as an Observer hears them.
const (
	OutcomeCommitted = "committed" // committed on at least MinLive live counters
	OutcomeAborted   = "aborted"   // aborted everywhere: nothing applied
	OutcomeUnknown   = "unknown"   // decided commit, but too few live counters acknowledged it
	OutcomeSkipped   = "skipped"   // never prepared: too few live counters, or too large
)

// RoundReport says what one round did.
type RoundReport struct {
	Outcome string
	// Items and Requests are what the round carried (a barrier carries none).
	Items, Requests int
	// Bytes is the size of its prepare.
	Bytes int
	// Prepare and Commit are how long each phase took; zero for a phase
	// the round did not reach.
	Prepare, Commit time.Duration
	// Disagreed: the live voters differed on how many ids the round adds.
	Disagreed bool
}

// Observer learns what each round did, for metrics. Round is called from
// the committer's loop once the round's requests are answered, and must
// return quickly.
type Observer interface {
	Round(RoundReport)
}

// Position is where the commit order stands.
type Position struct {
	Epoch     uint64
	ClusterID string
	// Last is the last resolved round and its outcome. The next round is Last.Round.Seq+1.
	Last wire.Decision
	// Committed is the last committed round. Rounds after it were aborted,
	// so a counter that holds Committed holds all the data.
	Committed wire.RoundID
	// Stable is the highest seq that every live participant of its round
	// has committed. Reads are fenced at it.
	Stable uint64
	// Base is the committed round this committer started from (Run): the
	// rounds of its epoch up to it are in the history for good.
	Base wire.RoundID
}

// Peer is a participant of one round.
type Peer struct {
	ID string
	// Live is false for a counter still syncing: it takes part in rounds so
	// it does not fall behind, but it does not count towards MinLive.
	Live bool
}

// Cluster is the membership the committer consults and informs.
type Cluster interface {
	// WriteSet lists the participants of the next round.
	WriteSet() []Peer
	// Failed reports a participant that did not answer or refused: it must
	// leave the write set and resync before it is used again.
	Failed(id string, err error)
	// Committing reports, before any commit message is sent, the voters of
	// a round decided commit: from then on each of them may hold it. An
	// error aborts the round instead.
	Committing(round wire.RoundID, clusterID string, voters []Peer) error
	// RoundDone reports the participants that acknowledged the commit,
	// before any client is answered and before the round is published as
	// stable. An error makes the outcome unknown to the clients and leaves
	// the stable watermark where it was.
	RoundDone(round wire.RoundID, clusterID string, acked []Peer) error
}

// Transport delivers round messages to one participant. Its errors fall in
// three kinds, told apart by optional methods:
//   - Refused() bool reports true: the participant answered "no" by the
//     protocol; it cannot take part as it stands.
//   - Rejected() bool reports true: the participant answered that the
//     request is malformed. That is about the request, not the participant.
//   - any other error: it could not be reached.
type Transport interface {
	// Prepare sends the round's prepare, encoded once (wire.EncodePrepare),
	// and returns the participant's vote.
	Prepare(ctx context.Context, id string, body []byte) (wire.Vote, error)
	Commit(ctx context.Context, id string, req wire.DecisionRequest) error
	Abort(ctx context.Context, id string, req wire.DecisionRequest) error
}

// Config tunes the committer.
type Config struct {
	// MinLive is the number of live counters that must commit a round before
	// a client is told it succeeded.
	MinLive int
	// MaxBatchItems caps the items merged into one round.
	MaxBatchItems int
	// MaxRoundBytes caps the encoded size of a round's prepare, items
	// and envelope for MaxView participants included.
	MaxRoundBytes int
	// MaxView is the largest number of participants of a round.
	MaxView int
	// QueueSize caps the requests waiting for a round; past it Submit
	// returns ErrOverloaded at once.
	QueueSize int
	// MaxQueueBytes caps the encoded bytes of the batches the committer
	// holds, from Submit until the request is answered (a caller that gave
	// up leaves its batch queued); past it Submit returns ErrOverloaded.
	MaxQueueBytes int64
	// CallTimeout bounds each call to a participant, plus one second per
	// BytesPerSecond bytes of the round's prepare: a large round takes
	// longer to send, decode and apply, and is not a failure.
	CallTimeout time.Duration
	// BytesPerSecond is the rate a participant is expected to handle at
	// least (16 MiB/s when zero).
	BytesPerSecond int
	// MaxCachedCounts bounds the tenants whose counts the committer keeps
	// for reads (100,000 by default).
	MaxCachedCounts int
	// CommitAttempts is how often a commit is sent before its participant
	// is given up as failed.
	CommitAttempts int
	// NewTxID returns a unique transaction id for each round.
	NewTxID func() string
	// Observer, when set, learns what each round did.
	Observer Observer
}

type request struct {
	batch   wire.Batch
	barrier bool
	done    chan error
}

type op struct {
	fn   func(ctx context.Context, pos *Position) error
	done chan error
}

// Committer runs rounds one at a time. Create it with New and start it with Run.
type Committer struct {
	cfg       Config
	cluster   Cluster
	transport Transport
	logger    *slog.Logger

	requests chan *request
	// next is a request taken from the queue that did not fit in the
	// round collected; it starts the next one. Only the loop uses it.
	next    *request
	ops     chan op
	stopped chan struct{}
	pos     atomic.Pointer[Position]
	counts  *countCache  // tenants' counts at the stable seq (CachedCount)
	held    atomic.Int64 // bytes of the batches submitted and not yet answered
	replay  replayLog    // the last rounds decided commit (Replay)
}

// New returns a committer; it does nothing until Run.
func New(cfg Config, cluster Cluster, transport Transport, logger *slog.Logger) *Committer {
	if cluster == nil || transport == nil || logger == nil || cfg.NewTxID == nil {
		panic("twopc.New: nil dependency")
	}
	cfg.MinLive = max(cfg.MinLive, 1)
	cfg.CommitAttempts = max(cfg.CommitAttempts, 1)
	if cfg.MaxBatchItems <= 0 {
		cfg.MaxBatchItems = 10000
	}
	if cfg.MaxView <= 0 {
		cfg.MaxView = 64
	}
	if cfg.MaxRoundBytes <= 0 {
		cfg.MaxRoundBytes = 64 << 20
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = 256 << 20
	}
	if cfg.BytesPerSecond <= 0 {
		cfg.BytesPerSecond = 16 << 20
	}
	if cfg.MaxCachedCounts <= 0 {
		cfg.MaxCachedCounts = 100_000
	}
	c := &Committer{
		cfg:       cfg,
		cluster:   cluster,
		transport: transport,
		logger:    logger,
		requests:  make(chan *request, cfg.QueueSize),
		ops:       make(chan op),
		stopped:   make(chan struct{}),
		replay:    replayLog{maxBytes: cfg.MaxRoundBytes},
		counts:    newCountCache(cfg.MaxCachedCounts),
	}
	c.setPos(Position{})
	return c
}

// Position returns the current position; safe from any goroutine.
func (c *Committer) Position() Position { return *c.pos.Load() }

// setPos publishes a copy of p: a published position is never modified.
func (c *Committer) setPos(p Position) { c.pos.Store(&p) }

// CachedCount is the tenant's count as of a stable seq at least fence,
// when the count cache holds it: a read that needs no counter.
func (c *Committer) CachedCount(tenantID string, fence uint64) (int64, bool) {
	return c.counts.get(tenantID, fence)
}

// FillCount gives the count cache a count a counter read as of stable seq at.
func (c *Committer) FillCount(tenantID string, n int64, at uint64) { c.counts.fill(tenantID, n, at) }

// MaxBatchBytes is the largest encoded batch a round can carry: what
// MaxRoundBytes leaves after the envelope of a prepare to MaxView counters.
func (c *Committer) MaxBatchBytes() int {
	return c.cfg.MaxRoundBytes - wire.PrepareOverhead(c.cfg.MaxView)
}

// Submit adds a batch of items to the next round and waits for its
// outcome. It returns nil once every live participant of the round has
// committed them and at least MinLive did. Items may repeat ids already
// added: they are counted once. A batch over MaxBatchBytes gets
// ErrTooLarge, and a full queue ErrOverloaded, both at once.
func (c *Committer) Submit(ctx context.Context, batch wire.Batch) error {
	if batch.Items == 0 {
		return nil
	}
	if len(batch.JSON) > c.MaxBatchBytes() {
		return fmt.Errorf("%w: %d bytes encoded, a round carries at most %d", ErrTooLarge, len(batch.JSON), c.MaxBatchBytes())
	}
	return c.enqueue(ctx, &request{batch: batch, done: make(chan error, 1)})
}

// Barrier runs a round, even an empty one, and waits for it. Syncing
// counters that take part in it and hold their snapshot become live.
func (c *Committer) Barrier(ctx context.Context) error {
	return c.enqueue(ctx, &request{barrier: true, done: make(chan error, 1)})
}

func (c *Committer) enqueue(ctx context.Context, r *request) error {
	select {
	case <-c.stopped:
		return ErrStopped
	default:
	}
	size := int64(len(r.batch.JSON))
	if c.held.Add(size) > c.cfg.MaxQueueBytes && size > 0 {
		c.held.Add(-size)
		return ErrOverloaded
	}
	select {
	case c.requests <- r:
	default:
		c.held.Add(-size)
		return ErrOverloaded
	}
	select {
	case err := <-r.done:
		return err
	case <-c.stopped:
		// The loop has stopped: a round that took r answered it before,
		// and no round runs any more. Otherwise r was never taken.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrStopped
		}
	case <-ctx.Done():
		// The round goes on without us; it may commit.
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// Do runs fn in the committer loop between two rounds, with the position
// it may change. ctx bounds the wait for the loop to take fn; once taken,
// Do returns fn's result. Membership changes that must not race with a round (a
// counter joining the write set at an exact seq) go through it.
func (c *Committer) Do(ctx context.Context, fn func(ctx context.Context, pos *Position) error) error {
	o := op{fn: fn, done: make(chan error, 1)}
	select {
	case c.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped:
		return ErrStopped
	}
	// The loop has taken fn and runs it now: wait for it, whatever ctx
	// does, so the caller never reads what fn writes while fn runs. fn
	// bounds its own calls.
	return <-o.done
}

// Run starts the loop at position start and returns when ctx ends. A round
// in flight when ctx ends is finished first (its calls have timeouts);
// requests not yet in a round get ErrStopped.
func (c *Committer) Run(ctx context.Context, start Position) {
	c.counts.reset(start.Stable)
	start.Base = start.Committed
	c.setPos(start)
	defer c.drain()
	work := context.WithoutCancel(ctx)
	for {
		if r := c.next; r != nil {
			// A request left over from the last round starts the next one,
			// but neither the end of ctx nor an op waits behind it: under
			// a steady load every round leaves one over.
			select {
			case <-ctx.Done():
				return
			case o := <-c.ops:
				c.runOp(work, o)
				continue
			default:
			}
			c.next = nil
			c.round(work, c.collect(r))
			continue
		}
		select {
		case <-ctx.Done():
			return
		case o := <-c.ops:
			c.runOp(work, o)
		case r := <-c.requests:
			c.round(work, c.collect(r))
		}
	}
}

// runOp runs an op; the position it changed is published only if it
// succeeds (a history reset whose record failed must not take effect).
func (c *Committer) runOp(ctx context.Context, o op) {
	pos := c.Position()
	err := o.fn(ctx, &pos)
	if err == nil {
		c.setPos(pos)
	}
	o.done <- err
}

// answer gives a request its outcome and releases what it held.
func (c *Committer) answer(r *request, err error) {
	c.held.Add(-int64(len(r.batch.JSON)))
	r.done <- err
}

// drain fails the requests still queued when the loop stops.
func (c *Committer) drain() {
	close(c.stopped)
	if c.next != nil {
		c.answer(c.next, ErrStopped)
		c.next = nil
	}
	for {
		select {
		case r := <-c.requests:
			c.answer(r, ErrStopped)
		default:
			return
		}
	}
}

// collect takes the first request and the requests already waiting, up to
// MaxBatchItems items and MaxBatchBytes encoded bytes: rounds are as large
// as the load, with no added delay. A request that does not fit is left
// for the next round (held in c.next).
func (c *Committer) collect(first *request) []*request {
	batch := []*request{first}
	n, size := first.batch.Items, len(first.batch.JSON)
	for n < c.cfg.MaxBatchItems {
		select {
		case r := <-c.requests:
			if n+r.batch.Items > c.cfg.MaxBatchItems || size+1+len(r.batch.JSON) > c.MaxBatchBytes() {
				c.next = r
				return batch
			}
			batch = append(batch, r)
			n, size = n+r.batch.Items, size+1+len(r.batch.JSON)
		default:
			return batch
		}
	}
	return batch
}

func countLive(peers []Peer) int {
	n := 0
	for _, p := range peers {
		if p.Live {
			n++
		}
	}
	return n
}

// round runs one round for a batch of requests and answers each of them.
func (c *Committer) round(ctx context.Context, batch []*request) {
	batches := make([]wire.Batch, len(batch))
	items, requests := 0, 0
	for i, r := range batch {
		batches[i] = r.batch
		items += r.batch.Items
		if !r.barrier {
			requests++
		}
	}
	rep := RoundReport{Items: items, Requests: requests}
	err := c.runRound(ctx, batches, items, &rep)
	for _, r := range batch {
		c.answer(r, err)
	}
	if c.cfg.Observer != nil {
		switch {
		case err == nil:
			rep.Outcome = OutcomeCommitted
		case errors.Is(err, ErrOutcomeUnknown):
			rep.Outcome = OutcomeUnknown
		case rep.Bytes == 0 || rep.Prepare == 0:
			rep.Outcome = OutcomeSkipped
		default:
			rep.Outcome = OutcomeAborted
		}
		c.cfg.Observer.Round(rep)
	}
}

// runRound runs one round and fills in rep what it did.
func (c *Committer) runRound(ctx context.Context, batches []wire.Batch, items int, rep *RoundReport) error {
	peers := c.cluster.WriteSet()
	need := c.cfg.MinLive
	if items == 0 {
		need = 1 // a barrier carries no data: one live counter to order it is enough
	}
	if live := countLive(peers); live < need {
		return fmt.Errorf("%w: %d live, %d needed", ErrUnavailable, live, need)
	}

	pos := c.Position()
	id := wire.RoundID{Epoch: pos.Epoch, Seq: pos.Last.Round.Seq + 1, TxID: c.cfg.NewTxID()}
	logger := c.logger.With("round", id.String(), "tx_id", id.TxID)
	view := make([]string, len(peers))
	for i, p := range peers {
		view[i] = p.ID
	}
	prep := wire.PrepareRequest{Round: id, Stable: pos.Stable, View: view}
	if !pos.Last.Round.IsZero() {
		last := pos.Last
		prep.Prev = &last
	}
	body := wire.EncodePrepare(prep, batches)
	if len(body) > c.cfg.MaxRoundBytes {
		// collect keeps rounds within the limit for up to MaxView
		// participants; the registry admits no more than that.
		return fmt.Errorf("%w: prepare of %d bytes over %d with %d participants", ErrTooLarge, len(body), c.cfg.MaxRoundBytes, len(peers))
	}

	// Phase one.
	rep.Bytes = len(body)
	start := time.Now()
	timeout := c.callTimeout(len(body))
	votes := make([]wire.Vote, len(peers))
	errs := c.each(ctx, peers, func(ctx context.Context, p Peer) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		i := slices.IndexFunc(peers, func(q Peer) bool { return q.ID == p.ID })
		var err error
		votes[i], err = c.transport.Prepare(ctx, p.ID, body)
		return err
	})
	rep.Prepare = max(time.Since(start), time.Nanosecond)
	var voters []Peer
	var liveVotes []wire.Vote
	var refusals, rejections []error
	for i, err := range errs {
		switch {
		case err == nil:
			voters = append(voters, peers[i])
			if peers[i].Live {
				liveVotes = append(liveVotes, votes[i])
			}
		case isRefusal(err):
			refusals = append(refusals, err)
			c.cluster.Failed(peers[i].ID, err)
		case isRejection(err):
			// About the request, not the participant: it stays.
			rejections = append(rejections, err)
		default:
			// Unreachable: drop it from this round; it resyncs before it is used again.
			logger.Warn("participant unreachable in prepare", "node", peers[i].ID, "err", err)
			c.cluster.Failed(peers[i].ID, err)
		}
	}
	if len(rejections) > 0 {
		c.abort(ctx, id, pos, peers, timeout)
		cause := errors.Join(rejections...)
		logger.Error("round aborted: a counter rejected its prepare", "err", cause)
		return fmt.Errorf("%w: %w", ErrRejected, cause)
	}
	if len(refusals) > 0 || countLive(voters) < need {
		c.abort(ctx, id, pos, peers, timeout)
		cause := errors.Join(refusals...)
		if cause == nil {
			cause = fmt.Errorf("%d live counters prepared, %d needed", countLive(voters), need)
		}
		logger.Warn("round aborted", "err", cause)
		return fmt.Errorf("%w: %w", ErrAborted, cause)
	}

	if err := c.cluster.Committing(id, pos.ClusterID, voters); err != nil {
		c.abort(ctx, id, pos, peers, timeout)
		logger.Error("round aborted: cannot record its holders", "err", err)
		return fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}

	// Decision: commit. It is final from here on, and goes out with the
	// next prepare or join as well, so a participant that misses this
	// message still learns it.
	c.replay.add(committedRound{clusterID: pos.ClusterID, round: id, prev: pos.Committed, body: body})
	added, known := agree(liveVotes)
	rep.Disagreed = !known && len(liveVotes) > 1
	if !known {
		logger.Error("live counters disagree on the ids this round adds: reads go to the counters", "votes", len(liveVotes))
	}
	c.counts.committed(id.Seq, added, known)
	pos.Last = wire.Decision{Round: id, Commit: true}
	pos.Committed = id
	c.setPos(pos)
	commit := wire.DecisionRequest{Round: id, Stable: pos.Stable}
	start = time.Now()
	errs = c.each(ctx, voters, func(ctx context.Context, p Peer) error {
		var err error
		for range c.cfg.CommitAttempts {
			// Each attempt has its own deadline: a retry after a timeout
			// gets the whole CallTimeout again.
			actx, cancel := context.WithTimeout(ctx, timeout)
			err = c.transport.Commit(actx, p.ID, commit)
			cancel()
			if err == nil || isRefusal(err) || isRejection(err) {
				return err
			}
		}
		return err
	})
	rep.Commit = max(time.Since(start), time.Nanosecond)
	var acked []Peer
	liveAcked := 0
	for i, err := range errs {
		if err != nil {
			logger.Warn("participant failed in commit", "node", voters[i].ID, "err", err)
			c.cluster.Failed(voters[i].ID, err)
			continue
		}
		acked = append(acked, voters[i])
		if voters[i].Live {
			liveAcked++
		}
	}
	// Record the holders first: a voter that failed to commit must not
	// count as one once a read may have seen the round, or a restarted
	// coordinator could resume from it and reuse this seq.
	if err := c.cluster.RoundDone(id, pos.ClusterID, acked); err != nil {
		logger.Error("cannot record the holders of a committed round", "err", err)
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if liveAcked > 0 {
		// Every participant still in the round committed: the round is
		// stable and reads may see it. The count cache gets there first.
		c.counts.stable(id.Seq)
		pos.Stable = id.Seq
		c.setPos(pos)
	}
	logger.Debug("round committed", "items", items, "bytes", len(body), "participants", len(peers), "acked", len(acked))
	if liveAcked < need {
		return fmt.Errorf("%w: round %s committed on %d live counters, %d needed", ErrOutcomeUnknown, id, liveAcked, need)
	}
	return nil
}

// callTimeout is the deadline of each call of a round whose prepare is
// size bytes: a participant decodes, stages and applies it.
func (c *Committer) callTimeout(size int) time.Duration {
	return c.cfg.CallTimeout + time.Duration(size)*time.Second/time.Duration(c.cfg.BytesPerSecond)
}

// abort decides abort and tells every participant. Delivery is best effort:
// the decision also travels with the next prepare.
func (c *Committer) abort(ctx context.Context, id wire.RoundID, pos Position, peers []Peer, timeout time.Duration) {
	pos.Last = wire.Decision{Round: id}
	c.setPos(pos)
	req := wire.DecisionRequest{Round: id, Stable: pos.Stable}
	c.each(ctx, peers, func(ctx context.Context, p Peer) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return c.transport.Abort(ctx, p.ID, req)
	})
}

// each calls fn for every peer in parallel and returns the errors in peer
// order. fn sets the deadline of each of its calls.
func (c *Committer) each(ctx context.Context, peers []Peer, fn func(context.Context, Peer) error) []error {
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { errs[i] = fn(ctx, p) })
	}
	wg.Wait()
	return errs
}

// isRefusal reports whether err is a participant's "no" by the protocol.
func isRefusal(err error) bool {
	var r interface{ Refused() bool }
	return errors.As(err, &r) && r.Refused()
}

// isRejection reports whether err is a participant's answer that the
// request itself is malformed.
func isRejection(err error) bool {
	var r interface{ Rejected() bool }
	return errors.As(err, &r) && r.Rejected()
}

// Queued returns how many requests wait for a round.
func (c *Committer) Queued() int { return len(c.requests) }
