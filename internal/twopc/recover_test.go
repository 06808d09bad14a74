package twopc_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

func rnd(epoch, seq uint64) wire.RoundID { return wire.RoundID{Epoch: epoch, Seq: seq} }

func TestMissing_WaitsForEveryParticipantOfTheLatestRound(t *testing.T) {
	tests := []struct {
		name    string
		reports map[string]wire.Status
		want    []string
	}{
		{"no reports: fresh cluster", map[string]wire.Status{}, nil},
		{"reports without views: nobody took part in a round", map[string]wire.Status{"a": {ID: "a"}}, nil},
		{"a stale counter names the others", map[string]wire.Status{
			"c": {ID: "c", View: []string{"a", "b", "c"}, ViewRound: rnd(1, 5)},
		}, []string{"a", "b"}},
		{"the latest view decides, not older ones", map[string]wire.Status{
			"c": {ID: "c", View: []string{"a", "b", "c"}, ViewRound: rnd(1, 5)},
			"b": {ID: "b", View: []string{"a", "b"}, ViewRound: rnd(1, 9)},
		}, []string{"a"}},
		{"closed", map[string]wire.Status{
			"a": {ID: "a", View: []string{"a", "b"}, ViewRound: rnd(1, 9)},
			"b": {ID: "b", View: []string{"a", "b"}, ViewRound: rnd(1, 9)},
		}, nil},
		{"a higher epoch is later, whatever the seq", map[string]wire.Status{
			"a": {ID: "a", View: []string{"a"}, ViewRound: rnd(1, 12)},
			"b": {ID: "b", View: []string{"b", "z"}, ViewRound: rnd(2, 9)},
		}, []string{"z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, twopc.Missing(tt.reports, nil, false))
		})
	}
}

func TestResume_ContinuesFromTheMostAdvancedReadyCounter(t *testing.T) {
	reports := map[string]wire.Status{
		"a": {ID: "a", Mode: wire.ModeReady, ClusterID: "cl", Epoch: 4, Last: rnd(4, 7), Committed: rnd(4, 7), LastCommitted: true},
		"b": {ID: "b", Mode: wire.ModeReady, ClusterID: "cl", Epoch: 4, Last: rnd(4, 6), Committed: rnd(4, 6), Staged: &wire.RoundID{Epoch: 4, Seq: 7}},
		// A syncing counter may hold a later round, but not the data before it.
		"s": {ID: "s", Mode: wire.ModeSyncing, ClusterID: "cl", Epoch: 5, Last: rnd(4, 8), Committed: rnd(4, 8)},
	}
	pos, seed := twopc.Resume(reports, 0, "new")
	assert.Equal(t, "a", seed)
	assert.Equal(t, uint64(6), pos.Epoch, "above every epoch seen")
	assert.Equal(t, "cl", pos.ClusterID)
	assert.Equal(t, wire.Decision{Round: rnd(4, 7), Commit: true}, pos.Last, "round 7, committed on a, is committed")
	assert.Equal(t, rnd(4, 7), pos.Committed)
	assert.Equal(t, uint64(7), pos.Stable)
}

func TestResume_FreshClusterAndEpochFloor(t *testing.T) {
	pos, seed := twopc.Resume(map[string]wire.Status{"a": {ID: "a", Mode: wire.ModeIdle}}, 1000, "new")
	assert.Empty(t, seed)
	assert.Equal(t, uint64(1000), pos.Epoch)
	assert.Equal(t, "new", pos.ClusterID)
	assert.True(t, pos.Last.Round.IsZero())
}

func TestMissing_WithRecordedHolders(t *testing.T) {
	holders := []twopc.Holder{{ID: "a", Incarnation: "a1", Live: true}, {ID: "b", Incarnation: "b1", Live: true}, {ID: "s", Incarnation: "s1"}}
	tests := []struct {
		name    string
		reports map[string]wire.Status
		want    []string
	}{
		{"nobody yet", map[string]wire.Status{}, []string{"a", "b", "s"}},
		{"one live holder as it was is enough", map[string]wire.Status{
			"b": {ID: "b", Incarnation: "b1", Mode: wire.ModeReady},
		}, nil},
		{"a restarted holder holds nothing", map[string]wire.Status{
			"a": {ID: "a", Incarnation: "a2", Mode: wire.ModeIdle},
		}, []string{"b", "s"}},
		{"a syncing holder proves nothing", map[string]wire.Status{
			"s": {ID: "s", Incarnation: "s1", Mode: wire.ModeReady},
		}, []string{"a", "b"}},
		{"every holder restarted: the data is gone, start over", map[string]wire.Status{
			"a": {ID: "a", Incarnation: "a2"}, "b": {ID: "b", Incarnation: "b2"}, "s": {ID: "s", Incarnation: "s2"},
		}, nil},
		{"views do not matter with a record", map[string]wire.Status{
			"a": {ID: "a", Incarnation: "a1", Mode: wire.ModeReady, View: []string{"a", "gone"}, ViewRound: rnd(1, 3)},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, twopc.Missing(tt.reports, holders, true))
		})
	}
}

func TestResume_ALaterEpochSupersedesAHigherSeq(t *testing.T) {
	reports := map[string]wire.Status{
		// x kept rounds of epoch 1 that the coordinator of epoch 2 aborted
		// by omission: it was unreachable when that coordinator resumed.
		"x": {ID: "x", Mode: wire.ModeReady, ClusterID: "cl", Epoch: 1, Last: rnd(1, 10), Committed: rnd(1, 10)},
		"y": {ID: "y", Mode: wire.ModeReady, ClusterID: "cl", Epoch: 2, Last: rnd(2, 9), Committed: rnd(2, 9)},
	}
	pos, seed := twopc.Resume(reports, 0, "new")
	assert.Equal(t, "y", seed)
	assert.Equal(t, rnd(2, 9), pos.Committed)
}

// TestResume_ACutSyncStillSeeds: a recorded live holder whose sync was cut
// reports syncing with what it holds; that settles recovery and seeds it,
// instead of starting a new, empty history.
func TestResume_ACutSyncStillSeeds(t *testing.T) {
	held := wire.RoundID{Epoch: 4, Seq: 9}
	reports := map[string]wire.Status{
		"a": {ID: "a", Mode: wire.ModeSyncing, ClusterID: "cl", Committed: wire.RoundID{Epoch: 4, Seq: 12}, Holds: held, Last: wire.RoundID{Epoch: 4, Seq: 12}},
		"b": {ID: "b", Mode: wire.ModeSyncing, ClusterID: "cl"},
	}
	holders := []twopc.Holder{{ID: "a", Live: true}, {ID: "b"}}
	assert.Empty(t, twopc.Missing(reports, holders, true))
	pos, seed := twopc.Resume(reports, 5, "new")
	assert.Equal(t, "a", seed)
	assert.Equal(t, "cl", pos.ClusterID, "the history goes on")
	assert.Equal(t, held, pos.Committed)
	assert.Equal(t, wire.Decision{Round: held, Commit: true}, pos.Last)

	// Without it, the same holders are heard and none holds a copy.
	delete(reports, "a")
	reports["a"] = wire.Status{ID: "a", Mode: wire.ModeSyncing, ClusterID: "cl"}
	assert.Empty(t, twopc.Missing(reports, holders, true))
	_, seed = twopc.Resume(reports, 5, "new")
	assert.Empty(t, seed)
}
