package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// smallFilter is a complete filter whose first part holds capacity keys.
func smallFilter(capacity int) *idFilter {
	f := newIDFilter(0, true)
	f.parts = []*bloomPart{newBloomPart(capacity)}
	return f
}

// TestIDFilter_NoFalseNegatives: every key added is reported as maybe
// held, also after the filter grew past its first capacity.
func TestIDFilter_NoFalseNegatives(t *testing.T) {
	f := smallFilter(10_000)
	n := 30_000
	for i := 0; i < n; i++ {
		f.add(idKey("t", fmt.Sprint(i)))
	}
	require.Len(t, f.parts, 2, "the first filter holds 10,000 keys, the next one twice as many")
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
	const capacity, probes = 100_000, 100_000
	f := smallFilter(capacity)
	for i := 0; i < capacity; i++ {
		f.add(idKey("tenant", fmt.Sprintf("held-%d", i)))
	}
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

// TestLedger_TheScanOfOpenFillsTheFilter: a ledger opened on data first
// reads the engine for every lookup; once its background scan ends, the
// filter holds every id on disk, and new ids are told apart in memory.
func TestLedger_TheScanOfOpenFillsTheFilter(t *testing.T) {
	fs := vfs.NewMem()
	l, err := Open(fs, "data", Options{ID: "c1", Incarnation: "i1"})
	require.NoError(t, err)
	_, err = l.Join(wire.JoinRequest{Epoch: 1, ClusterID: "cl"})
	require.NoError(t, err)
	held := make([]wire.Item, 5000)
	for i := range held {
		held[i] = wire.Item{Tenant: fmt.Sprintf("t%d", i%7), ID: fmt.Sprintf("held-%d", i)}
	}
	commitRound(t, l, 1, held)
	require.NoError(t, l.Close())

	l, err = Open(fs, "data", Options{Incarnation: "i2"})
	require.NoError(t, err)
	defer func() { assert.NoError(t, l.Close()) }()
	deadline := time.Now().Add(10 * time.Second)
	for !l.ids.complete.Load() {
		require.True(t, time.Now().Before(deadline), "the scan did not finish")
		time.Sleep(time.Millisecond) // polling the background scan
	}
	for _, it := range held {
		require.True(t, l.mayHoldID(idKey(it.Tenant, it.ID)), "an id held at Open is in the filter")
	}
	assert.False(t, l.mayHoldID(idKey("t1", "never-written")), "an id never written is not, with this key")
}

// TestLedger_CloseStopsTheScan: Close waits for the scan, which must not
// read a closed engine (that panics), also when it is cut short.
func TestLedger_CloseStopsTheScan(t *testing.T) {
	fs := vfs.NewMem()
	l, err := Open(fs, "data", Options{ID: "c1", Incarnation: "i1", NoSync: true})
	require.NoError(t, err)
	_, err = l.Join(wire.JoinRequest{Epoch: 1, ClusterID: "cl"})
	require.NoError(t, err)
	its := make([]wire.Item, 50_000)
	for i := range its {
		its[i] = wire.Item{Tenant: "t", ID: fmt.Sprint(i)}
	}
	commitRound(t, l, 1, its)
	require.NoError(t, l.Close())
	for range 5 {
		l, err = Open(fs, "data", Options{Incarnation: "again"})
		require.NoError(t, err)
		require.NoError(t, l.Close())
	}
}

// TestIDFilter_OutgrownIsDroppedNotWrong: a filter that would pass its
// memory bound stops being used, rather than grow with the data or answer
// "not held" for ids it could not record.
func TestIDFilter_OutgrownIsDroppedNotWrong(t *testing.T) {
	f := newCappedIDFilter(0, true, partBytes(10_000)+partBytes(20_000))
	f.parts = []*bloomPart{newBloomPart(10_000)}
	require.True(t, f.usable())
	recorded := 0
	for !f.add(idKey("t", fmt.Sprint(recorded))) {
		recorded++
		require.Less(t, recorded, 100_000, "the filter never reached its bound")
	}
	assert.Equal(t, 30_000, recorded, "parts of 10,000 and 20,000 ids, then no room for 40,000")
	assert.False(t, f.usable(), "a dropped filter is not trusted")
	assert.Zero(t, f.bytes(), "and its memory is released")
	f.complete.Store(true) // a scan ending afterwards does not make it usable again
	assert.False(t, f.usable())

	assert.True(t, newCappedIDFilter(10*minFilterCapacity, false, partBytes(minFilterCapacity)).dropped.Load(),
		"more ids at Open than the bound holds: dropped from the start")
	small := newCappedIDFilter(minFilterCapacity, false, 3*partBytes(minFilterCapacity)/2)
	assert.False(t, small.dropped.Load(), "sized to the bound when twice the ids do not fit")
}

// TestLedger_ADroppedFilterReadsTheEngine: with the filter dropped, a held
// id is still found (by the engine) and not counted again.
func TestLedger_ADroppedFilterReadsTheEngine(t *testing.T) {
	l, err := Open(vfs.NewMem(), "data", Options{ID: "c1", Incarnation: "i1"})
	require.NoError(t, err)
	defer func() { assert.NoError(t, l.Close()) }()
	_, err = l.Join(wire.JoinRequest{Epoch: 1, ClusterID: "cl"})
	require.NoError(t, err)
	commitRound(t, l, 1, tenantItems("t", "a"))
	l.ids.dropped.Store(true)
	l.ids.parts = nil
	commitRound(t, l, 2, tenantItems("t", "b")) // added while dropped: only the engine knows it
	assert.Equal(t, map[string]int64{"t": 1}, commitRound(t, l, 3, tenantItems("t", "a", "b", "c")).Added, "only c is new")
}

// commitRound prepares and commits round seq of epoch 1 on l, with the
// round before it stable, and returns the vote.
func commitRound(t *testing.T, l *Ledger, seq uint64, its []wire.Item) wire.Vote {
	t.Helper()
	r := wire.RoundID{Epoch: 1, Seq: seq}
	vote, err := l.Prepare(wire.PrepareRequest{Round: r, Stable: seq - 1, Items: its})
	require.NoError(t, err)
	require.NoError(t, l.Commit(wire.DecisionRequest{Round: r, Stable: seq - 1}))
	return vote
}

// tenantItems are the items of ids for one tenant.
func tenantItems(tenant string, ids ...string) []wire.Item {
	its := make([]wire.Item, len(ids))
	for i, id := range ids {
		its[i] = wire.Item{Tenant: tenant, ID: id}
	}
	return its
}
