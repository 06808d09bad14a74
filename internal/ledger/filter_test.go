package ledger

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIDFilter_NoFalseNegatives: every key added is reported as maybe
// held, also after the filter grew past its first capacity.
func TestIDFilter_NoFalseNegatives(t *testing.T) {
	f := newIDFilter(0)
	n := 3 * minFilterCapacity
	for i := 0; i < n; i++ {
		f.add(idKey("t", fmt.Sprint(i)))
	}
	require.Len(t, f.parts, 2, "the first filter holds 2x what it was sized for, the next one the rest")
	for i := 0; i < n; i++ {
		if !f.mayContain(idKey("t", fmt.Sprint(i))) {
			t.Fatalf("key %d added but reported absent", i)
		}
	}
}

// TestIDFilter_FewFalsePositives: filled to capacity, the filter says
// "maybe" for few keys it never saw, so nearly every lookup of a new id
// stays in memory. A filter that mapped every key to one block, or set
// too few bits, says "maybe" for most.
func TestIDFilter_FewFalsePositives(t *testing.T) {
	f := newIDFilter(0)
	for i := 0; i < minFilterCapacity; i++ {
		f.add(idKey("tenant", fmt.Sprintf("held-%d", i)))
	}
	const probes = 200_000
	fp := 0
	for i := 0; i < probes; i++ {
		if f.mayContain(idKey("tenant", fmt.Sprintf("new-%d", i))) {
			fp++
		}
	}
	rate := float64(fp) / probes
	t.Logf("false positives: %d of %d (%.3f%%), %d bytes", fp, probes, 100*rate, f.bytes())
	assert.Less(t, rate, 0.005)
}

// TestIDFilter_ResetForgets: after a reset nothing is reported held.
func TestIDFilter_ResetForgets(t *testing.T) {
	f := newIDFilter(0)
	k := idKey("t", "a")
	f.add(k)
	require.True(t, f.mayContain(k))
	f.reset()
	assert.False(t, f.mayContain(k))
}
