package ledger

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// TestLedger_LookupsAreServedFromTheBlockCache: once the engine runs with
// full-size memtables and the rows are in sstables, a round's lookups keep
// the filter and index blocks they read in the block cache. The engine
// reserves its memtables (the live one and one kept for reuse) inside that
// cache: sized no larger than them, the cache held nothing, and every
// lookup read its blocks from the file again (a round was 3x slower at
// 1 M ids).
func TestLedger_LookupsAreServedFromTheBlockCache(t *testing.T) {
	l, err := Open(vfs.NewMem(), "data", Options{ID: "c1", Incarnation: "i1", NoSync: true})
	require.NoError(t, err)
	defer func() { assert.NoError(t, l.Close()) }()
	_, err = l.Join(wire.JoinRequest{Epoch: 1, ClusterID: "cl"})
	require.NoError(t, err)

	// The first memtable is small and each rotation doubles the next: write
	// (under a prefix the ledger never reads) until memtables are full size.
	value := make([]byte, 256<<10)
	for i := 0; i < 5*memTableBytes/2/len(value); i++ {
		require.NoError(t, l.db.Set(fmt.Appendf([]byte("zfill-"), "%08d", i), value, pebble.NoSync))
	}
	seq := uint64(0)
	round := func(ids ...string) {
		seq++
		commitRound(t, l, seq, tenantItems("t", ids...))
	}
	held := make([]string, 2000)
	for i := range held {
		held[i] = fmt.Sprintf("held-%d", i)
	}
	round(held...)
	require.NoError(t, l.db.Flush())
	require.Equal(t, uint64(memTableBytes), l.db.Metrics().MemTable.Size/uint64(max(1, l.db.Metrics().MemTable.Count)),
		"memtables are full size")

	for i := 0; i < 20; i++ {
		round(fmt.Sprintf("new-%d", i), held[i])
	}
	st := l.Engine()
	assert.Positive(t, st.CacheBytes, "blocks held in the cache")
	assert.Greater(t, st.CacheHits, st.CacheMisses, "lookups hit the cache")
	assert.Positive(t, st.DiskBytes)
}
