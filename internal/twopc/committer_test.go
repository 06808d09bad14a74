package twopc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// refusal is a "no" vote.
type refusal struct{}

func (refusal) Error() string { return "no" }
func (refusal) Refused() bool { return true }

var errUnreachable = errors.New("unreachable")

// fakeNet records every message and answers per participant.
type fakeNet struct {
	mu       sync.Mutex
	prepares map[string][]wire.PrepareRequest
	commits  map[string][]wire.RoundID
	aborts   map[string][]wire.RoundID
	prepErr  map[string]error
	commErr  map[string]error
	commHang map[string]int // commits that hang until their deadline
	block    chan struct{}  // when set, prepares wait on it
	votes    map[string]wire.Vote
}

func newFakeNet() *fakeNet {
	return &fakeNet{
		prepares: map[string][]wire.PrepareRequest{},
		commits:  map[string][]wire.RoundID{},
		aborts:   map[string][]wire.RoundID{},
		prepErr:  map[string]error{},
		commErr:  map[string]error{},
		commHang: map[string]int{},
		votes:    map[string]wire.Vote{},
	}
}

func (f *fakeNet) Prepare(ctx context.Context, id string, body []byte) (wire.Vote, error) {
	err := f.prepare(ctx, id, body)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.votes[id], err
}

func (f *fakeNet) prepare(ctx context.Context, id string, body []byte) error {
	// Peers here are named "a", "b": not URLs, so not wire.DecodePrepare.
	var req wire.PrepareRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("the committer sent a malformed prepare: %w", err)
	}
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepares[id] = append(f.prepares[id], req)
	return f.prepErr[id]
}

// Commit records the commit; an attempt listed in commHang waits, like an
// unresponsive peer, until its context ends.
func (f *fakeNet) Commit(ctx context.Context, id string, req wire.DecisionRequest) error {
	f.mu.Lock()
	f.commits[id] = append(f.commits[id], req.Round)
	hang := f.commHang[id] > 0
	if hang {
		f.commHang[id]--
	}
	err := f.commErr[id]
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (f *fakeNet) Abort(_ context.Context, id string, req wire.DecisionRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborts[id] = append(f.aborts[id], req.Round)
	return nil
}

// fakeCluster is a fixed write set that records failures and acks.
type fakeCluster struct {
	mu     sync.Mutex
	peers  []twopc.Peer
	failed []string
	acked  map[uint64][]string
	// onRoundDone, when set, runs at the start of RoundDone.
	onRoundDone func(round wire.RoundID)
	doneErr     error
}

func (c *fakeCluster) WriteSet() []twopc.Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []twopc.Peer
	for _, p := range c.peers {
		if !slices.Contains(c.failed, p.ID) {
			out = append(out, p)
		}
	}
	return out
}

func (c *fakeCluster) Failed(id string, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = append(c.failed, id)
}

func (c *fakeCluster) Committing(wire.RoundID, string, []twopc.Peer) error { return nil }

func (c *fakeCluster) RoundDone(round wire.RoundID, _ string, acked []twopc.Peer) error {
	if c.onRoundDone != nil {
		c.onRoundDone(round)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doneErr != nil {
		return c.doneErr
	}
	if c.acked == nil {
		c.acked = map[uint64][]string{}
	}
	for _, p := range acked {
		c.acked[round.Seq] = append(c.acked[round.Seq], p.ID)
	}
	return nil
}

func start(t *testing.T, minLive int, peers ...twopc.Peer) (*twopc.Committer, *fakeNet, *fakeCluster) {
	t.Helper()
	net, cl := newFakeNet(), &fakeCluster{peers: peers}
	var txs atomic.Int64
	newTxID := func() string { return fmt.Sprintf("tx-%d", txs.Add(1)) }
	c := twopc.New(twopc.Config{MinLive: minLive, CallTimeout: time.Second, CommitAttempts: 2, NewTxID: newTxID}, cl, net, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, twopc.Position{Epoch: 3}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, net, cl
}

func live(ids ...string) []twopc.Peer {
	out := make([]twopc.Peer, len(ids))
	for i, id := range ids {
		out[i] = twopc.Peer{ID: id, Live: true}
	}
	return out
}

func item(tenant, id string) wire.Item { return wire.Item{ID: id, Tenant: tenant} }

func batch(items ...wire.Item) wire.Batch { return wire.EncodeBatch(items) }

func TestCommitter_CommitsOnEveryParticipantInOrder(t *testing.T) {
	c, net, _ := start(t, 1, live("a", "b", "c")...)
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "2"))))

	for _, id := range []string{"a", "b", "c"} {
		assert.Equal(t, []wire.RoundID{{Epoch: 3, Seq: 1, TxID: "tx-1"}, {Epoch: 3, Seq: 2, TxID: "tx-2"}}, net.commits[id], id)
		require.Len(t, net.prepares[id], 2)
		assert.Equal(t, []string{"a", "b", "c"}, net.prepares[id][0].View)
		assert.Equal(t, &wire.Decision{Round: wire.RoundID{Epoch: 3, Seq: 1, TxID: "tx-1"}, Commit: true}, net.prepares[id][1].Prev,
			"each prepare carries the previous decision")
		assert.Equal(t, uint64(1), net.prepares[id][1].Stable, "and the stable watermark")
	}
	pos := c.Position()
	assert.Equal(t, uint64(2), pos.Stable)
	assert.Equal(t, wire.RoundID{Epoch: 3, Seq: 2, TxID: "tx-2"}, pos.Committed)
}

func TestCommitter_AbortsWhenAnyVoteIsNo(t *testing.T) {
	c, net, cl := start(t, 1, live("a", "b", "c")...)
	net.prepErr["b"] = refusal{}
	err := c.Submit(t.Context(), batch(item("t", "1")))
	require.ErrorIs(t, err, twopc.ErrAborted)

	for _, id := range []string{"a", "b", "c"} {
		assert.Empty(t, net.commits[id], "%s got no commit", id)
		assert.Equal(t, []wire.RoundID{{Epoch: 3, Seq: 1, TxID: "tx-1"}}, net.aborts[id], "%s got the abort", id)
	}
	assert.Equal(t, []string{"b"}, cl.failed, "the refusing counter must resync")
	pos := c.Position()
	assert.Equal(t, uint64(0), pos.Stable)
	assert.True(t, pos.Committed.IsZero())
	assert.Equal(t, wire.Decision{Round: wire.RoundID{Epoch: 3, Seq: 1, TxID: "tx-1"}}, pos.Last, "the seq is used up by the abort")
}

func TestCommitter_UnreachableParticipantIsDroppedAndRoundCompletes(t *testing.T) {
	c, net, cl := start(t, 1, live("a", "b", "c")...)
	net.prepErr["c"] = errUnreachable
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
	assert.Equal(t, []string{"c"}, cl.failed)
	assert.Empty(t, net.commits["c"])
	assert.Len(t, net.commits["a"], 1)
	assert.Equal(t, []string{"a", "b"}, cl.acked[1])
}

func TestCommitter_BelowMinLiveIsUnavailable(t *testing.T) {
	c, net, _ := start(t, 2, twopc.Peer{ID: "a", Live: true}, twopc.Peer{ID: "s", Live: false})
	err := c.Submit(t.Context(), batch(item("t", "1")))
	require.ErrorIs(t, err, twopc.ErrUnavailable)
	assert.Empty(t, net.prepares, "nothing was sent")

	require.NoError(t, c.Barrier(t.Context()), "an empty round needs one live counter only")
}

func TestCommitter_CommitFailureBelowMinLiveIsIndeterminate(t *testing.T) {
	c, net, cl := start(t, 2, live("a", "b")...)
	net.commErr["b"] = errUnreachable
	err := c.Submit(t.Context(), batch(item("t", "1")))
	require.ErrorIs(t, err, twopc.ErrOutcomeUnknown, "committed on fewer live counters than required")
	assert.Equal(t, []string{"b"}, cl.failed)
	assert.Len(t, net.commits["b"], 2, "the commit was retried")
	assert.Equal(t, uint64(1), c.Position().Stable, "the decision is commit all the same")
}

func TestCommitter_GroupsConcurrentRequestsIntoOneRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net, _ := start(t, 1, live("a")...)
		net.block = make(chan struct{})
		first := make(chan error, 1)
		go func() { first <- c.Submit(context.Background(), batch(item("t", "first"))) }()
		synctest.Wait() // round 1 is blocked in prepare
		errs := make([]error, 50)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				errs[i] = c.Submit(context.Background(), batch(item("t", fmt.Sprint(i)), item("t", "dup")))
			})
		}
		synctest.Wait() // all 50 are queued behind it
		close(net.block)
		require.NoError(t, <-first)
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		net.mu.Lock()
		defer net.mu.Unlock()
		assert.Len(t, net.prepares["a"], 2, "51 requests, 2 rounds")
		total := 0
		for _, p := range net.prepares["a"] {
			total += len(p.Items)
		}
		// Requests travel as encoded: a repeat across requests reaches the
		// counters, which count it once (ledger tests).
		assert.Equal(t, 101, total, "every item of every request: first, then 50 × 2")
	})
}

func TestCommitter_DoRunsBetweenRounds(t *testing.T) {
	c, _, _ := start(t, 1, live("a")...)
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
	var seen twopc.Position
	require.NoError(t, c.Do(t.Context(), func(_ context.Context, pos *twopc.Position) error {
		seen = *pos
		pos.ClusterID = "changed"
		return nil
	}))
	assert.Equal(t, uint64(1), seen.Last.Round.Seq)
	assert.Equal(t, "changed", c.Position().ClusterID)
}

func TestCommitter_EmptySubmitIsANoop(t *testing.T) {
	c, net, _ := start(t, 1, live("a")...)
	require.NoError(t, c.Submit(t.Context(), batch()))
	assert.Empty(t, net.prepares)
}

// rejection is an answer about the request (a 400 or 413), not the peer.
type rejection struct{}

func (rejection) Error() string  { return "413 too_large" }
func (rejection) Rejected() bool { return true }

func TestCommitter_RejectedPrepareAbortsWithoutFailingTheCounter(t *testing.T) {
	c, net, cl := start(t, 1, live("a", "b")...)
	net.prepErr["b"] = rejection{}
	err := c.Submit(t.Context(), batch(item("t", "1")))
	require.ErrorIs(t, err, twopc.ErrRejected)
	assert.NotErrorIs(t, err, twopc.ErrAborted, "not a vote: the client's answer differs")
	assert.Empty(t, cl.failed, "a counter that rejects a request has not failed")
	for _, id := range []string{"a", "b"} {
		assert.Empty(t, net.commits[id], "%s got no commit", id)
		assert.Len(t, net.aborts[id], 1, "%s got the abort", id)
	}
	assert.Equal(t, []twopc.Peer{{ID: "a", Live: true}, {ID: "b", Live: true}}, cl.WriteSet())
}

func TestCommitter_CommitRetryAfterATimeoutGetsAFreshDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net, cl := start(t, 1, live("a", "b")...)
		net.commHang["b"] = 1 // the first commit to b times out, the second arrives
		require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
		assert.Len(t, net.commits["b"], 2, "the commit was retried")
		assert.Empty(t, cl.failed, "the retry succeeded: b stays")
		assert.Equal(t, []string{"a", "b"}, cl.acked[1])
	})
}

func TestCommitter_FullQueueIsOverloadedAndAppliesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, cl := newFakeNet(), &fakeCluster{peers: live("a")}
		c := twopc.New(twopc.Config{MinLive: 1, CallTimeout: time.Second, QueueSize: 2, NewTxID: func() string { return "tx" }},
			cl, net, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx, twopc.Position{Epoch: 3})
		net.block = make(chan struct{})
		first := make(chan error, 1)
		go func() { first <- c.Submit(context.Background(), batch(item("t", "first"))) }()
		synctest.Wait() // round 1 is blocked in prepare
		queued := make(chan error, 2)
		for i := range 2 {
			go func() { queued <- c.Submit(context.Background(), batch(item("t", fmt.Sprint(i)))) }()
		}
		synctest.Wait() // the queue is full
		err := c.Submit(context.Background(), batch(item("t", "shed")))
		require.ErrorIs(t, err, twopc.ErrOverloaded)
		close(net.block)
		require.NoError(t, <-first)
		require.NoError(t, <-queued)
		require.NoError(t, <-queued)
		net.mu.Lock()
		defer net.mu.Unlock()
		for _, p := range net.prepares["a"] {
			for _, it := range p.Items {
				assert.NotEqual(t, "shed", it.ID, "the shed request reached no counter")
			}
		}
	})
}

func TestCommitter_RoundsStayWithinMaxRoundBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, cl := newFakeNet(), &fakeCluster{peers: live("a")}
		const maxRound = 8 << 10
		var sizes []int
		var mu sync.Mutex
		sized := &sizingNet{fakeNet: net, sizes: &sizes, mu: &mu}
		c := twopc.New(twopc.Config{MinLive: 1, CallTimeout: time.Second, MaxRoundBytes: maxRound, MaxView: 1, NewTxID: func() string { return "tx" }},
			cl, sized, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx, twopc.Position{Epoch: 3})

		// One request too large for any round is refused at once.
		big := make([]wire.Item, 0, 64)
		for i := range 64 {
			big = append(big, item("t", fmt.Sprintf("%0100d", i)))
		}
		require.ErrorIs(t, c.Submit(t.Context(), batch(big...)), twopc.ErrTooLarge)

		// Many that fit one by one but not together are split in rounds.
		net.block = make(chan struct{})
		first := make(chan error, 1)
		go func() { first <- c.Submit(context.Background(), batch(item("t", "first"))) }()
		synctest.Wait()
		errs := make(chan error, 40)
		for i := range 40 {
			go func() { errs <- c.Submit(context.Background(), batch(item("<&>", fmt.Sprintf("%0200d", i)))) }()
		}
		synctest.Wait()
		close(net.block)
		require.NoError(t, <-first)
		for range 40 {
			require.NoError(t, <-errs)
		}
		mu.Lock()
		defer mu.Unlock()
		assert.Greater(t, len(sizes), 2, "the 40 requests did not fit in one round")
		for _, n := range sizes {
			assert.LessOrEqual(t, n, maxRound, "every prepare within MaxRoundBytes")
		}
	})
}

// sizingNet records the size of every prepare.
type sizingNet struct {
	*fakeNet
	mu    *sync.Mutex
	sizes *[]int
}

func (s *sizingNet) Prepare(ctx context.Context, id string, body []byte) (wire.Vote, error) {
	s.mu.Lock()
	*s.sizes = append(*s.sizes, len(body))
	s.mu.Unlock()
	return s.fakeNet.Prepare(ctx, id, body)
}

func TestCommitter_SubmitAfterStopIsStopped(t *testing.T) {
	net, cl := newFakeNet(), &fakeCluster{peers: live("a")}
	c := twopc.New(twopc.Config{MinLive: 1, CallTimeout: time.Second, NewTxID: func() string { return "tx" }},
		cl, net, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, twopc.Position{Epoch: 3}); close(done) }()
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
	cancel()
	<-done
	require.ErrorIs(t, c.Submit(t.Context(), batch(item("t", "2"))), twopc.ErrStopped)
}

// TestCommitter_StableIsPublishedOnlyAfterTheHoldersAreRecorded is the
// regression test of a round published stable before RoundDone recorded
// its holders: a crash or a failed write in between let a restarted
// coordinator resume from a voter that had not committed, and reuse a seq
// a read had already seen.
func TestCommitter_StableIsPublishedOnlyAfterTheHoldersAreRecorded(t *testing.T) {
	c, _, cl := start(t, 1, live("a", "b")...)
	var stableAtDone []uint64
	cl.onRoundDone = func(wire.RoundID) { stableAtDone = append(stableAtDone, c.Position().Stable) }
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "2"))))
	assert.Equal(t, []uint64{0, 1}, stableAtDone, "each round is stable only after its holders are recorded")
	assert.Equal(t, uint64(2), c.Position().Stable)

	cl.mu.Lock()
	cl.doneErr = errors.New("disk full")
	cl.mu.Unlock()
	err := c.Submit(t.Context(), batch(item("t", "3")))
	require.ErrorIs(t, err, twopc.ErrOutcomeUnknown)
	assert.Equal(t, uint64(2), c.Position().Stable, "a round whose holders are not recorded is not published stable")
	assert.Equal(t, uint64(3), c.Position().Committed.Seq, "it is committed all the same")
}

// TestCommitter_DoIsNotStarvedByRequestsLeftOverFromEachRound is the
// regression test of a loop that, while every round left one request over
// for the next (requests larger than half a round), never picked an op or
// the end of its context: joins and promotions waited for the load to stop.
func TestCommitter_DoIsNotStarvedByRequestsLeftOverFromEachRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, cl := newFakeNet(), &fakeCluster{peers: live("a")}
		c := twopc.New(twopc.Config{MinLive: 1, MaxBatchItems: 10, CallTimeout: time.Second, NewTxID: func() string { return "tx" }},
			cl, &slowNet{net}, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		runDone := make(chan struct{})
		go func() { c.Run(ctx, twopc.Position{Epoch: 1}); close(runDone) }()

		const workers, each = 16, 50
		var submitted atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for k := range each {
					// 6 items: two never fit in one round of 10.
					its := make([]wire.Item, 6)
					for i := range its {
						its[i] = item("t", fmt.Sprintf("%d-%d-%d", w, k, i))
					}
					_ = c.Submit(context.Background(), batch(its...))
					submitted.Add(1)
				}
			})
		}
		time.Sleep(20 * time.Millisecond) // the load is under way (fake time)
		require.NoError(t, c.Do(context.Background(), func(context.Context, *twopc.Position) error { return nil }))
		assert.Less(t, submitted.Load(), int64(workers*each/2), "the op ran between rounds, not after the load")
		cancel()
		<-runDone // Run returns while requests are still coming
		wg.Wait() // the rest get ErrStopped
	})
}

// slowNet takes 2 ms per prepare.
type slowNet struct{ *fakeNet }

func (s *slowNet) Prepare(ctx context.Context, id string, body []byte) (wire.Vote, error) {
	time.Sleep(2 * time.Millisecond)
	return s.fakeNet.Prepare(ctx, id, body)
}

// TestCommitter_QueuedBytesAreBoundedUntilAnswered: the bytes of the
// batches the committer holds are bounded, from Submit until the request
// is answered, even when its caller gave up waiting.
func TestCommitter_QueuedBytesAreBoundedUntilAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, cl := newFakeNet(), &fakeCluster{peers: live("a")}
		one := batch(item("t", "0123456789012345678901234567890123456789")) // ~60 bytes
		c := twopc.New(twopc.Config{MinLive: 1, CallTimeout: time.Second, MaxQueueBytes: int64(len(one.JSON)) * 3 / 2,
			NewTxID: func() string { return "tx" }}, cl, net, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx, twopc.Position{Epoch: 1})
		net.block = make(chan struct{})
		gaveUp, stop := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() { first <- c.Submit(gaveUp, one) }()
		synctest.Wait() // in a round, blocked in prepare
		stop()          // its caller gives up: the batch is still held
		require.ErrorIs(t, <-first, twopc.ErrOutcomeUnknown)
		require.ErrorIs(t, c.Submit(context.Background(), one), twopc.ErrOverloaded, "the bytes are still held")
		close(net.block)
		synctest.Wait() // the round ends and releases them
		require.NoError(t, c.Submit(context.Background(), one))
	})
}

// deadlineNet records the time each prepare and commit has left.
type deadlineNet struct {
	*fakeNet
	mu   sync.Mutex
	left []time.Duration
}

func (d *deadlineNet) Prepare(ctx context.Context, id string, body []byte) (wire.Vote, error) {
	dl, _ := ctx.Deadline()
	d.mu.Lock()
	d.left = append(d.left, time.Until(dl))
	d.mu.Unlock()
	return d.fakeNet.Prepare(ctx, id, body)
}

// TestCommitter_LargeRoundsGetTimeInProportion is the regression test of
// valid large rounds whose prepare took longer than the fixed call timeout
// to send and decode: every counter was marked dead. Each call gets
// CallTimeout plus one second per BytesPerSecond of the prepare.
func TestCommitter_LargeRoundsGetTimeInProportion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dn := &deadlineNet{fakeNet: newFakeNet()}
		c := twopc.New(twopc.Config{MinLive: 1, CallTimeout: time.Second, BytesPerSecond: 1 << 20, NewTxID: func() string { return "tx" }},
			&fakeCluster{peers: live("a")}, dn, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx, twopc.Position{Epoch: 1})
		require.NoError(t, c.Submit(t.Context(), batch(item("t", "small"))))
		big := make([]wire.Item, 4000)
		for i := range big {
			big[i] = item("t", fmt.Sprintf("%01000d", i)) // ~4 MiB encoded
		}
		require.NoError(t, c.Submit(t.Context(), batch(big...)))
		require.Len(t, dn.left, 2)
		assert.Equal(t, time.Second, dn.left[0].Round(10*time.Millisecond), "a small round: the call timeout")
		assert.InDelta(t, 5.0, dn.left[1].Seconds(), 0.2, "4 MiB at 1 MiB/s: four seconds more")
	})
}

// TestCommitter_DoWaitsForAnOpItHasStarted is the regression test of a data
// race the chaos test found: Do returned when its context ended while the
// loop was still running fn, and the caller read what fn was writing.
func TestCommitter_DoWaitsForAnOpItHasStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := start(t, 1, live("a")...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		wrote := false
		err := c.Do(ctx, func(context.Context, *twopc.Position) error {
			time.Sleep(100 * time.Millisecond) // longer than the caller's deadline
			wrote = true
			return nil
		})
		require.NoError(t, err, "fn ran to the end: its result, not the deadline")
		assert.True(t, wrote)
	})
}

// setVotes makes every named participant vote with added.
func (f *fakeNet) setVotes(added map[string]int64, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.votes[id] = wire.Vote{Added: added}
	}
}

// TestCommitter_CountCacheFollowsTheStableRounds: a count filled at the
// stable seq moves with every stable round by what its live voters said
// the round added; it is never answered for a fence above what it holds;
// and a round whose live voters disagree empties it.
func TestCommitter_CountCacheFollowsTheStableRounds(t *testing.T) {
	c, net, _ := start(t, 1, live("a", "b")...)
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "1"))))
	_, ok := c.CachedCount("t", c.Position().Stable)
	assert.False(t, ok, "nothing filled yet")

	c.FillCount("t", 1, c.Position().Stable)
	n, ok := c.CachedCount("t", c.Position().Stable)
	require.True(t, ok)
	assert.Equal(t, int64(1), n)

	net.setVotes(map[string]int64{"t": 2}, "a", "b")
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "2"), item("t", "3"))))
	n, ok = c.CachedCount("t", c.Position().Stable)
	require.True(t, ok)
	assert.Equal(t, int64(3), n, "the round's two new ids")
	_, ok = c.CachedCount("t", c.Position().Stable+1)
	assert.False(t, ok, "not for a fence above its seq")

	// A count read a round ago is brought up to the cache's seq.
	c.FillCount("u", 5, c.Position().Stable-1)
	net.setVotes(map[string]int64{"u": 1}, "a", "b")
	require.NoError(t, c.Submit(t.Context(), batch(item("u", "x"))))
	n, ok = c.CachedCount("u", c.Position().Stable)
	require.True(t, ok)
	assert.Equal(t, int64(6), n, "5 as of two rounds ago, +0 in the first, +1 in the second")

	net.setVotes(map[string]int64{"t": 1}, "a")
	net.setVotes(map[string]int64{"t": 2}, "b")
	require.NoError(t, c.Submit(t.Context(), batch(item("t", "4"))))
	_, ok = c.CachedCount("t", c.Position().Stable)
	assert.False(t, ok, "the voters disagreed: nothing cached is trusted")
}
