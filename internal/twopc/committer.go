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
)

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
	// before any client is answered. An error makes the outcome unknown
	// to the clients.
	RoundDone(round wire.RoundID, clusterID string, acked []Peer) error
}

// Transport delivers round messages to one participant. A participant that
// answered "no" returns an error with a method Refused() bool reporting true;
// any other error means it could not be reached.
type Transport interface {
	Prepare(ctx context.Context, id string, req wire.PrepareRequest) error
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
	// CallTimeout bounds each call to a participant.
	CallTimeout time.Duration
	// CommitAttempts is how often a commit is sent before its participant
	// is given up as failed.
	CommitAttempts int
	// NewTxID returns a unique transaction id for each round.
	NewTxID func() string
}

type request struct {
	items   []wire.Item
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
	ops      chan op
	stopped  chan struct{}
	pos      atomic.Pointer[Position]
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
	c := &Committer{
		cfg:       cfg,
		cluster:   cluster,
		transport: transport,
		logger:    logger,
		requests:  make(chan *request, 1024),
		ops:       make(chan op),
		stopped:   make(chan struct{}),
	}
	c.setPos(Position{})
	return c
}

// Position returns the current position; safe from any goroutine.
func (c *Committer) Position() Position { return *c.pos.Load() }

// setPos publishes a copy of p: a published position is never modified.
func (c *Committer) setPos(p Position) { c.pos.Store(&p) }

// Submit adds items in the next round and waits for its outcome. It returns
// nil once every live participant of the round has committed them and at
// least MinLive did. Items may repeat ids already added: they are counted once.
func (c *Committer) Submit(ctx context.Context, items []wire.Item) error {
	if len(items) == 0 {
		return nil
	}
	return c.enqueue(ctx, &request{items: items, done: make(chan error, 1)})
}

// Barrier runs a round, even an empty one, and waits for it. Syncing
// counters that take part in it and hold their snapshot become live.
func (c *Committer) Barrier(ctx context.Context) error {
	return c.enqueue(ctx, &request{barrier: true, done: make(chan error, 1)})
}

func (c *Committer) enqueue(ctx context.Context, r *request) error {
	select {
	case c.requests <- r:
	case <-ctx.Done():
		return fmt.Errorf("queue round: %w", ctx.Err())
	case <-c.stopped:
		return ErrStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The round goes on without us; it may commit.
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// Do runs fn in the committer loop between two rounds, with the position
// it may change. Membership changes that must not race with a round (a
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
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run starts the loop at position start and returns when ctx ends. A round
// in flight when ctx ends is finished first (its calls have timeouts).
func (c *Committer) Run(ctx context.Context, start Position) {
	c.setPos(start)
	defer c.drain()
	work := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-c.ops:
			pos := c.Position()
			err := o.fn(work, &pos)
			c.setPos(pos)
			o.done <- err
		case r := <-c.requests:
			c.round(work, c.collect(r))
		}
	}
}

// drain fails the requests still queued when the loop stops.
func (c *Committer) drain() {
	close(c.stopped)
	for {
		select {
		case r := <-c.requests:
			r.done <- ErrStopped
		default:
			return
		}
	}
}

// collect takes the first request and every request already waiting, up
// to MaxBatchItems: rounds are as large as the load, with no added delay.
func (c *Committer) collect(first *request) []*request {
	batch := []*request{first}
	n := len(first.items)
	for n < c.cfg.MaxBatchItems {
		select {
		case r := <-c.requests:
			batch = append(batch, r)
			n += len(r.items)
		default:
			return batch
		}
	}
	return batch
}

type itemKey struct{ tenant, id string }

// merge concatenates the batch's items, dropping repeats.
func merge(batch []*request) []wire.Item {
	seen := make(map[itemKey]struct{})
	var items []wire.Item
	for _, r := range batch {
		for _, it := range r.items {
			k := itemKey{it.Tenant, it.ID}
			if _, ok := seen[k]; ok {
				continue
			}
			seen[k] = struct{}{}
			items = append(items, it)
		}
	}
	return items
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
	err := c.runRound(ctx, merge(batch))
	for _, r := range batch {
		r.done <- err
	}
}

func (c *Committer) runRound(ctx context.Context, items []wire.Item) error {
	peers := c.cluster.WriteSet()
	need := c.cfg.MinLive
	if len(items) == 0 {
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
	prep := wire.PrepareRequest{Round: id, Stable: pos.Stable, View: view, Items: items}
	if !pos.Last.Round.IsZero() {
		last := pos.Last
		prep.Prev = &last
	}

	// Phase one.
	errs := c.each(ctx, peers, func(ctx context.Context, p Peer) error {
		return c.transport.Prepare(ctx, p.ID, prep)
	})
	var voters []Peer
	var refusals []error
	for i, err := range errs {
		switch {
		case err == nil:
			voters = append(voters, peers[i])
		case isRefusal(err):
			refusals = append(refusals, err)
			c.cluster.Failed(peers[i].ID, err)
		default:
			// Unreachable: drop it from this round; it resyncs before it is used again.
			logger.Warn("participant unreachable in prepare", "node", peers[i].ID, "err", err)
			c.cluster.Failed(peers[i].ID, err)
		}
	}
	if len(refusals) > 0 || countLive(voters) < need {
		c.abort(ctx, id, pos, peers)
		cause := errors.Join(refusals...)
		if cause == nil {
			cause = fmt.Errorf("%d live counters prepared, %d needed", countLive(voters), need)
		}
		logger.Warn("round aborted", "err", cause)
		return fmt.Errorf("%w: %w", ErrAborted, cause)
	}

	if err := c.cluster.Committing(id, pos.ClusterID, voters); err != nil {
		c.abort(ctx, id, pos, peers)
		logger.Error("round aborted: cannot record its holders", "err", err)
		return fmt.Errorf("%w: %w", ErrAborted, err)
	}

	// Decision: commit. It is final from here on, and goes out with the
	// next prepare or join as well, so a participant that misses this
	// message still learns it.
	pos.Last = wire.Decision{Round: id, Commit: true}
	pos.Committed = id
	c.setPos(pos)
	commit := wire.DecisionRequest{Round: id, Stable: pos.Stable}
	errs = c.each(ctx, voters, func(ctx context.Context, p Peer) error {
		var err error
		for range c.cfg.CommitAttempts {
			if err = c.transport.Commit(ctx, p.ID, commit); err == nil || isRefusal(err) {
				return err
			}
		}
		return err
	})
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
	if liveAcked > 0 {
		// Every participant still in the round committed: the round is
		// stable and reads may see it.
		pos.Stable = id.Seq
		c.setPos(pos)
	}
	if err := c.cluster.RoundDone(id, pos.ClusterID, acked); err != nil {
		logger.Error("cannot record the holders of a committed round", "err", err)
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	logger.Debug("round committed", "items", len(items), "participants", len(peers), "acked", len(acked))
	if liveAcked < need {
		return fmt.Errorf("%w: round %s committed on %d live counters, %d needed", ErrOutcomeUnknown, id, liveAcked, need)
	}
	return nil
}

// abort decides abort and tells every participant. Delivery is best effort:
// the decision also travels with the next prepare.
func (c *Committer) abort(ctx context.Context, id wire.RoundID, pos Position, peers []Peer) {
	pos.Last = wire.Decision{Round: id}
	c.setPos(pos)
	req := wire.DecisionRequest{Round: id, Stable: pos.Stable}
	c.each(ctx, peers, func(ctx context.Context, p Peer) error {
		return c.transport.Abort(ctx, p.ID, req)
	})
}

// each calls fn for every peer in parallel, each call with its own timeout,
// and returns the errors in peer order.
func (c *Committer) each(ctx context.Context, peers []Peer, fn func(context.Context, Peer) error) []error {
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
			defer cancel()
			errs[i] = fn(ctx, p)
		})
	}
	wg.Wait()
	return errs
}

// isRefusal reports whether err is a participant's "no", as opposed to a
// participant that could not be reached.
func isRefusal(err error) bool {
	var r interface{ Refused() bool }
	return errors.As(err, &r) && r.Refused()
}
