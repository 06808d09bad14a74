package clustertest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
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
