package clustertest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// TestCluster_SyncedCounterGoesLiveWhenTheLastLiveOneDiesDuringItsPromotion
// is the regression test of a fully synced counter that waited SYNC_TIMEOUT
// to go live: the last live counter died during its promotion round, the
// aborted round moved the last seq, and promotion alone required the
// counter to have applied the last seq rather than the last committed one.
func TestCluster_SyncedCounterGoesLiveWhenTheLastLiveOneDiesDuringItsPromotion(t *testing.T) {
	t.Parallel()
	// A sync timeout far longer than the test waits: only a promotion
	// that does not wait for it passes.
	c := startLive(t, clustertest.Options{Counters: 1, SyncTimeout: 5 * time.Minute, RecoveryTries: 1000})
	a := c.Counters[0]
	mustAdd(t, c, items("acme", "x", "y")...)

	// a answers health checks and snapshots but no prepare: the new
	// counter's promotion round finds a unreachable, marks it dead, and
	// aborts with no live voter. Then a stops for good.
	heal := c.Faults.Add(clustertest.Rule{Host: a.Host(), Path: "/internal/prepare", Fault: clustertest.Drop})
	defer heal()
	b := c.AddCounter(t, "counter-b")
	b.Start(t)
	require.Eventually(t, func() bool { return c.State(t.Context(), a) == "dead" }, waitFor, tick,
		"b's promotion round finds a unreachable")
	a.Stop() // a is gone for good: b is the only copy left
	heal()

	require.Eventually(t, func() bool { return c.State(t.Context(), b) == "live" }, waitFor, tick,
		"b holds every committed round: it goes live without waiting for SYNC_TIMEOUT")
	require.Eventually(t, func() bool {
		n, err := c.Count(t.Context(), "acme")
		return err == nil && n == 2
	}, waitFor, tick)

	// b was recorded as a holder when it went live alone: a, the holder
	// before it, comes back as a new process (with nothing), and that is
	// not taken for the loss of every copy.
	a.Start(t)
	require.Eventually(t, func() bool { return c.LiveCount(t.Context()) == 2 }, waitFor, tick)
	assert.Equal(t, int64(2), mustCount(t, c, "acme"), "no new, empty history")
	resp, err := c.Add(t.Context(), items("acme", "z")...)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.Status)
	for _, n := range []*clustertest.Node{a, b} {
		lc, err := c.LocalCount(t.Context(), n, "acme")
		require.NoError(t, err)
		assert.Equal(t, int64(3), lc.Count, n.Name)
	}
}

// TestCluster_CountersRefuseTheReplacedCoordinatorOnceTheyRegister is the
// regression test of the fencing claim: a coordinator that was replaced
// (paused, partitioned) and wakes up must change nothing. Counters used to
// learn the new epoch only from the new coordinator's first message, after
// its recovery; now they adopt it when they register, before their report
// counts, so the old coordinator is refused while the new one recovers.
func TestCluster_CountersRefuseTheReplacedCoordinatorOnceTheyRegister(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{RecoveryGrace: 3 * time.Second})
	mustAdd(t, c, items("acme", "a")...)
	before, err := c.Members(t.Context())
	require.NoError(t, err)
	old := before.Last // the replaced coordinator's epoch and last round

	c.Coordinator.Stop()
	c.Coordinator.Start(t) // recovers for 3 s

	// The old coordinator's next prepare, as it would send it on waking.
	counters := c.CounterClient()
	for _, n := range c.Counters {
		prep := wire.EncodePrepare(wire.PrepareRequest{
			Round:  wire.RoundID{Epoch: old.Epoch, Seq: old.Seq + 1, TxID: "from-the-old-coordinator"},
			Stable: old.Seq, View: []string{n.ID()},
		}, []wire.Batch{wire.EncodeBatch(items("acme", "lost"))})
		require.Eventually(t, func() bool {
			_, err := counters.Prepare(t.Context(), n.ID(), prep)
			return remote.HasCode(err, wire.CodeStaleEpoch)
		}, waitFor, tick, "%s refuses the old epoch", n.Name)
	}
	resp, err := c.Do(t.Context(), http.MethodGet, "/health", nil)
	require.NoError(t, err)
	assert.Contains(t, string(resp.Body), "recovering", "fenced by registration, not by the new coordinator's rounds")

	require.Eventually(t, func() bool { return c.LiveCount(t.Context()) == len(c.Counters) }, waitFor, tick)
	mustAdd(t, c, items("acme", "b")...)
	assert.Equal(t, int64(2), mustCount(t, c, "acme"))
}

// TestCluster_APausedSnapshotSourceIsSwapped: a snapshot source that stops
// sending (paused) is given up after 5 × COUNTER_TIMEOUT without progress
// and another live counter serves the snapshot; the sync does not wait for
// SYNC_TIMEOUT.
func TestCluster_APausedSnapshotSourceIsSwapped(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{SyncTimeout: 5 * time.Minute, RecoveryTries: 1000})
	mustAdd(t, c, items("acme", "a", "b")...)
	joiner := c.Counters[2]
	joiner.Stop()
	mustAdd(t, c, items("acme", "c")...)
	paused := c.Faults.Add(clustertest.Rule{Host: c.Counters[0].Host(), Path: "/internal/snapshot", Fault: clustertest.Hold})
	defer paused()
	joiner.Start(t)
	require.Eventually(t, func() bool { return c.State(t.Context(), joiner) == "live" }, waitFor, tick)
	lc, err := c.LocalCount(t.Context(), joiner, "acme")
	require.NoError(t, err)
	assert.Equal(t, int64(3), lc.Count)
}

// TestCluster_ASlowJoinerDelaysNoWrite is the regression test of joins
// sent from inside the committer loop: a joiner slow to answer stalled
// every write for up to COUNTER_TIMEOUT, again at each retry. The join is
// now sent outside the loop; the counter enters the write set between two
// rounds only if none ran meanwhile.
func TestCluster_ASlowJoinerDelaysNoWrite(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{Counters: 2, CounterTimeout: 5 * time.Second, RecoveryTries: 1000})
	joiner := c.AddCounter(t, "counter-slow")
	held := c.Faults.Add(clustertest.Rule{Host: joiner.Host(), Path: "/internal/join", Fault: clustertest.Hold})
	joiner.Start(t)
	require.Eventually(t, func() bool { return c.State(t.Context(), joiner) == "syncing" }, waitFor, tick)

	// The join waits for up to 5 s; each write is given 2.
	for i := range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		resp, err := c.Add(ctx, items("acme", fmt.Sprint(i))...)
		cancel()
		require.NoError(t, err, "write %d waited for the join", i)
		assert.Equal(t, http.StatusOK, resp.Status)
	}
	held()
	require.Eventually(t, func() bool { return c.State(t.Context(), joiner) == "live" }, waitFor, tick)
	lc, err := c.LocalCount(t.Context(), joiner, "acme")
	require.NoError(t, err)
	assert.Equal(t, int64(5), lc.Count)
}

// TestCluster_AReadThatTimesOutSaysSo: a read that does not finish within
// REQUEST_TIMEOUT is 504 "timeout", with a message about a read, not the
// write's "may or may not have been applied".
func TestCluster_AReadThatTimesOutSaysSo(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{RequestTimeout: 300 * time.Millisecond, CounterTimeout: 5 * time.Second, RecoveryTries: 1000})
	held := c.Faults.Add(clustertest.Rule{Path: "/internal/count", Fault: clustertest.Hold})
	defer held()
	resp, err := c.Do(t.Context(), http.MethodGet, "/items/acme/count", nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusGatewayTimeout, resp.Status)
	assert.Equal(t, wire.CodeTimeout, resp.Error().Code)
	assert.Contains(t, resp.Error().Message, "read")
	assert.NotContains(t, resp.Error().Message, "applied")
}

// TestCluster_AFailedStateWriteChangesNoHolder (from a review): with the
// state file unwritable, a round whose holders change aborts, but the
// coordinator used to keep its voters as the holders in memory. When that
// voter restarted, it believed every holder had, started a new history,
// and wiped the real holder when it came back: acknowledged items lost.
func TestCluster_AFailedStateWriteChangesNoHolder(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{Counters: 2, RecoveryTries: 1000})
	a, b := c.Counters[0], c.Counters[1]
	mustAdd(t, c, items("acme", "x", "y", "z")...)

	restore, err := c.BreakStateFile()
	require.NoError(t, err)
	cut := c.Faults.Add(clustertest.Rule{Host: a.Host(), Fault: clustertest.Drop})
	require.Eventually(t, func() bool { return c.State(t.Context(), a) == "dead" }, waitFor, tick)
	resp, err := c.Add(t.Context(), items("acme", "w")...) // voters {b}: the holders would change
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.Status, "not recorded, so not committed: %s", resp.Body)

	b.Stop()
	b.Wipe(c)
	b.Start(t) // a new process, with nothing: its disk is gone too
	require.Eventually(t, func() bool { return c.State(t.Context(), b) != "" }, waitFor, tick, "the coordinator has seen b come back")
	restore()
	cut() // a, which holds everything, comes back
	require.Eventually(t, func() bool { return c.LiveCount(t.Context()) == 2 }, waitFor, tick)
	assert.Equal(t, int64(3), mustCount(t, c, "acme"), "a was not wiped by a history reset")
}
