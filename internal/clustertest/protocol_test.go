package clustertest_test

import (
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
	resp, err := c.Add(t.Context(), items("acme", "z")...)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.Status)
	lc, err := c.LocalCount(t.Context(), b, "acme")
	require.NoError(t, err)
	assert.Equal(t, int64(3), lc.Count)
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
	counters := remote.NewCounters(c.Client, c.Token)
	for _, n := range c.Counters {
		prep := wire.EncodePrepare(wire.PrepareRequest{
			Round:  wire.RoundID{Epoch: old.Epoch, Seq: old.Seq + 1, TxID: "from-the-old-coordinator"},
			Stable: old.Seq, View: []string{n.URL},
		}, []wire.Batch{wire.EncodeBatch(items("acme", "lost"))})
		require.Eventually(t, func() bool {
			return remote.HasCode(counters.Prepare(t.Context(), n.URL, prep), wire.CodeStaleEpoch)
		}, waitFor, tick, "%s refuses the old epoch", n.Name)
	}
	resp, err := c.Do(t.Context(), http.MethodGet, "/health", nil)
	require.NoError(t, err)
	assert.Contains(t, string(resp.Body), "recovering", "fenced by registration, not by the new coordinator's rounds")

	require.Eventually(t, func() bool { return c.LiveCount(t.Context()) == len(c.Counters) }, waitFor, tick)
	mustAdd(t, c, items("acme", "b")...)
	assert.Equal(t, int64(2), mustCount(t, c, "acme"))
}
