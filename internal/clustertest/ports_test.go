package clustertest

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestListenFree_BindsBelowTheEphemeralRange: a node's port is outside
// the range outbound connections take their local ports from, so a restart
// finds it free.
func TestListenFree_BindsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low <= lowestPort {
		t.Skipf("the ephemeral range starts at %d: nothing to stay below", low)
	}
	for range 20 {
		ln, err := listenFree()
		require.NoError(t, err)
		_, p, err := net.SplitHostPort(ln.Addr().String())
		require.NoError(t, err)
		port, err := strconv.Atoi(p)
		require.NoError(t, err)
		require.GreaterOrEqual(t, port, lowestPort)
		require.Less(t, port, low, "below the ephemeral range")
		require.NoError(t, ln.Close())
	}
}
