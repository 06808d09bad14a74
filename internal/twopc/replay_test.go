package twopc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

func replayRound(seq, prev uint64, ids ...string) committedRound {
	its := make([]wire.Item, len(ids))
	for i, id := range ids {
		its[i] = wire.Item{ID: id, Tenant: "t"}
	}
	r := wire.RoundID{Epoch: 1, Seq: seq}
	return committedRound{clusterID: "cl", round: r, prev: wire.RoundID{Epoch: 1, Seq: prev},
		body: wire.EncodePrepare(wire.PrepareRequest{Round: r}, []wire.Batch{wire.EncodeBatch(its)})}
}

// TestReplay_OnlyWhatTheLogHoldsWhole: the rows since < seq <= upto come
// back only when every committed round in that range is in the log.
func TestReplay_OnlyWhatTheLogHoldsWhole(t *testing.T) {
	c := &Committer{replay: replayLog{maxBytes: 1 << 20}}
	c.replay.add(replayRound(3, 1, "a"))
	c.replay.add(replayRound(5, 3, "b", "c")) // seq 4 was aborted
	c.replay.add(replayRound(6, 5, "a"))
	rid := func(seq uint64) wire.RoundID { return wire.RoundID{Epoch: 1, Seq: seq} }

	rows, ok, err := c.Replay("cl", 3, rid(6))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []wire.SnapshotEntry{{Tenant: "t", ID: "b", Seq: 5}, {Tenant: "t", ID: "c", Seq: 5}, {Tenant: "t", ID: "a", Seq: 6}}, rows)

	rows, ok, _ = c.Replay("cl", 4, rid(5))
	assert.True(t, ok, "since 4: round 5 only, its prev (3) is at or below since")
	assert.Len(t, rows, 2)

	_, ok, _ = c.Replay("cl", 0, rid(6))
	assert.False(t, ok, "round 1 is not in the log")
	_, ok, _ = c.Replay("other", 3, rid(6))
	assert.False(t, ok, "another history")
	_, ok, _ = c.Replay("cl", 3, rid(7))
	assert.False(t, ok, "a round the log does not hold")

	// A round that does not follow the newest starts the log over.
	c.replay.add(replayRound(9, 8, "x"))
	_, ok, _ = c.Replay("cl", 5, rid(6))
	assert.False(t, ok)
}

// TestReplay_IsBounded: the log keeps at most replayRounds rounds and
// maxBytes of bodies, dropping the oldest.
func TestReplay_IsBounded(t *testing.T) {
	c := &Committer{replay: replayLog{maxBytes: 1 << 20}}
	for seq := uint64(1); seq <= 2*replayRounds; seq++ {
		c.replay.add(replayRound(seq, seq-1, "a"))
	}
	assert.Len(t, c.replay.rounds, replayRounds)
	small := &Committer{replay: replayLog{maxBytes: len(replayRound(1, 0, "a").body) * 2}}
	for seq := uint64(1); seq <= 5; seq++ {
		small.replay.add(replayRound(seq, seq-1, "a"))
	}
	assert.Len(t, small.replay.rounds, 2)
	assert.LessOrEqual(t, small.replay.bytes, small.replay.maxBytes)
}
