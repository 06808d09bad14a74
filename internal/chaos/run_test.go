package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
)

// TestSettle_RestartsACoordinatorThatExitedAfterTheHeal: the state file
// fault makes a recovering coordinator exit, by design, and the supervisor
// (Compose's restart policy) starts it again. When it exits after the
// nemesis healed the fault and looked, the end of the run must still start
// it, or the run reports an availability violation the system did not
// have (seed 2381249947490907).
func TestSettle_RestartsACoordinatorThatExitedAfterTheHeal(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{
		Counters: 2, HealthInterval: 50 * time.Millisecond, CounterTimeout: 250 * time.Millisecond,
		RecoveryTries: 4, RecoveryGrace: 100 * time.Millisecond,
	})
	ctx := context.Background()
	require.NoError(t, waitUntil(ctx, 10*time.Second, func() bool { return c.LiveCount(ctx) == 2 }))

	// A restarted coordinator recovers once the counters report; its
	// recovery cannot write the state file, so it exits.
	for _, n := range c.Counters {
		n.Stop()
	}
	c.Coordinator.Stop()
	c.Coordinator.Start(t)
	restore, err := c.BreakStateFile()
	require.NoError(t, err)
	for _, n := range c.Counters {
		n.Start(t)
	}
	require.NoError(t, waitUntil(ctx, 10*time.Second, c.Coordinator.Exited), "the coordinator exits")
	restore() // healed after it exited, with nobody restarting it

	_, err = settle(ctx, c, []string{"tenant-0"})
	require.NoError(t, err)
}
