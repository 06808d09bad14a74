package ledger_test

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

const epoch = 7

func rid(seq uint64) wire.RoundID { return wire.RoundID{Epoch: epoch, Seq: seq} }

func items(tenant string, ids ...string) []wire.Item {
	out := make([]wire.Item, len(ids))
	for i, id := range ids {
		out[i] = wire.Item{ID: id, Tenant: tenant}
	}
	return out
}

// open returns an empty ledger on an in-memory file system, closed with the test.
func open(t *testing.T, id, incarnation string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(vfs.NewMem(), "data", ledger.Options{ID: id, Incarnation: incarnation})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

// ids lists a tenant's ids.
func ids(t *testing.T, l *ledger.Ledger, tenant string) []string {
	t.Helper()
	out, err := l.IDs(tenant)
	require.NoError(t, err)
	return out
}

// ready returns a ledger that joined an empty cluster.
func ready(t *testing.T) *ledger.Ledger {
	t.Helper()
	l := open(t, "c1", "inc-1")
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl"})
	require.NoError(t, err)
	require.True(t, resp.Complete)
	return l
}

// commit runs one whole round on l.
func commit(t *testing.T, l *ledger.Ledger, seq, stable uint64, its ...wire.Item) {
	t.Helper()
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(seq), Stable: stable, Items: its}))
	require.NoError(t, l.Commit(wire.DecisionRequest{Round: rid(seq), Stable: stable}))
}

func count(t *testing.T, l *ledger.Ledger, fence uint64, tenant string) int64 {
	t.Helper()
	n, err := l.Count(epoch, fence, tenant)
	require.NoError(t, err)
	return n
}

func TestLedger_CountsDistinctIDsPerTenant(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, append(items("acme", "a", "b", "a"), items("globex", "a")...)...)
	commit(t, l, 2, 1, items("acme", "b", "c")...)

	assert.Equal(t, int64(3), count(t, l, 2, "acme"))
	assert.Equal(t, int64(1), count(t, l, 2, "globex"))
	assert.Equal(t, int64(0), count(t, l, 2, "nobody"))
	assert.Equal(t, []string{"a", "b", "c"}, ids(t, l, "acme"))
}

func TestLedger_ReadsSeeOnlyStableRounds(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	// Round 1 is committed here, but no message said it is stable yet: a
	// fenced read at 0 must not see it, or a read served by a counter that
	// has not committed it yet could go backwards.
	assert.Equal(t, int64(0), count(t, l, 0, "acme"))
	lc, last, err := l.LocalCount("acme")
	require.NoError(t, err)
	assert.Equal(t, int64(1), lc, "the local view includes every applied round")
	assert.Equal(t, rid(1), last)

	assert.Equal(t, int64(1), count(t, l, 1, "acme"), "a fence at 1 makes it visible")
}

func TestLedger_RefusesReadsAheadOfWhatItApplied(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	_, err := l.Count(epoch, 2, "acme")
	assert.ErrorIs(t, err, ledger.ErrBehind)
}

func TestLedger_RefusesOlderEpochs(t *testing.T) {
	l := ready(t)
	_, err := l.Count(epoch-1, 0, "acme")
	assert.ErrorIs(t, err, ledger.ErrStaleEpoch)
	err = prepare(l, wire.PrepareRequest{Round: wire.RoundID{Epoch: epoch - 1, Seq: 1}})
	assert.ErrorIs(t, err, ledger.ErrStaleEpoch)
}

func TestLedger_PrepareRules(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, l *ledger.Ledger)
		prepare wire.PrepareRequest
		wantErr error
	}{
		{"next round", func(*testing.T, *ledger.Ledger) {}, wire.PrepareRequest{Round: rid(1)}, nil},
		{"gap: a round was missed", func(*testing.T, *ledger.Ledger) {}, wire.PrepareRequest{Round: rid(2)}, ledger.ErrOutOfOrder},
		{"late prepare of a decided round", func(t *testing.T, l *ledger.Ledger) { commit(t, l, 1, 0) },
			wire.PrepareRequest{Round: rid(1)}, ledger.ErrOutOfOrder},
		{"late prepare of an aborted round that never arrived", func(t *testing.T, l *ledger.Ledger) {
			require.NoError(t, l.Abort(wire.DecisionRequest{Round: rid(1)}))
		}, wire.PrepareRequest{Round: rid(1)}, ledger.ErrOutOfOrder},
		{"duplicate prepare votes the same", func(t *testing.T, l *ledger.Ledger) {
			require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(1)}))
		}, wire.PrepareRequest{Round: rid(1)}, nil},
		{"another round while one is undecided", func(t *testing.T, l *ledger.Ledger) {
			require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(1)}))
		}, wire.PrepareRequest{Round: rid(2)}, ledger.ErrOutOfOrder},
		{"previous decision travels with the next prepare", func(t *testing.T, l *ledger.Ledger) {
			require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(1)}))
		}, wire.PrepareRequest{Round: rid(2), Prev: &wire.Decision{Round: rid(1), Commit: true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ready(t)
			tt.setup(t, l)
			err := prepare(l, tt.prepare)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}

func TestLedger_IdleCounterTakesNoRounds(t *testing.T) {
	l := open(t, "c1", "inc-1")
	assert.ErrorIs(t, prepare(l, wire.PrepareRequest{Round: rid(1)}), ledger.ErrNotMember)
	_, err := l.Count(epoch, 0, "acme")
	assert.ErrorIs(t, err, ledger.ErrNotReady)
}

func TestLedger_CommitIsIdempotentAndNeedsAPrepare(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	assert.NoError(t, l.Commit(wire.DecisionRequest{Round: rid(1), Stable: 1}), "a retried commit succeeds")
	assert.Equal(t, int64(1), count(t, l, 1, "acme"), "and applies nothing twice")
	assert.ErrorIs(t, l.Commit(wire.DecisionRequest{Round: rid(2)}), ledger.ErrUnknownRound)
}

func TestLedger_PrevDecisionResolvesAMissedCommit(t *testing.T) {
	l := ready(t)
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(1), Items: items("acme", "a")}))
	// The commit of round 1 is lost; round 2 carries it.
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(2), Stable: 1, Prev: &wire.Decision{Round: rid(1), Commit: true}}))
	assert.Equal(t, int64(1), count(t, l, 1, "acme"))
}

func TestLedger_AbortDropsTheRound(t *testing.T) {
	l := ready(t)
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(1), Items: items("acme", "a")}))
	require.NoError(t, l.Abort(wire.DecisionRequest{Round: rid(1)}))
	commit(t, l, 2, 2, items("acme", "b")...)
	assert.Equal(t, int64(1), count(t, l, 2, "acme"))
	assert.Equal(t, []string{"b"}, ids(t, l, "acme"))
}

// joinFrom joins l to a cluster at the given position.
func joinFrom(t *testing.T, l *ledger.Ledger, last wire.Decision, committed wire.RoundID, stable uint64) wire.JoinResponse {
	t.Helper()
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", Last: last, Committed: committed, Stable: stable})
	require.NoError(t, err)
	return resp
}

func TestLedger_JoinKeepsAMatchingHistory(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	// The cluster went on with an aborted round 2 that this counter missed.
	resp := joinFrom(t, l, wire.Decision{Round: rid(2)}, rid(1), 1)
	assert.True(t, resp.Complete)
	assert.Equal(t, int64(1), count(t, l, 1, "acme"))
	commit(t, l, 3, 1, items("acme", "b")...)
	assert.Equal(t, int64(2), count(t, l, 3, "acme"))
}

func TestLedger_JoinBehindSyncsFromItsStablePrefix(t *testing.T) {
	source := ready(t)
	joiner := ready(t)
	commit(t, source, 1, 0, items("acme", "a")...)
	commit(t, joiner, 1, 0, items("acme", "a")...)
	commit(t, source, 2, 1, items("acme", "b")...)
	commit(t, joiner, 2, 1, items("acme", "b")...) // committed, not yet known stable, by this same coordinator
	commit(t, source, 3, 2, items("acme", "c")...)
	commit(t, source, 4, 3, items("globex", "x")...)

	resp := joinFrom(t, joiner, wire.Decision{Round: rid(4), Commit: true}, rid(4), 3)
	require.False(t, resp.Complete)
	assert.Equal(t, uint64(2), resp.Since, "every row its coordinator decided is kept")
	_, err := joiner.Count(epoch, 4, "acme")
	assert.ErrorIs(t, err, ledger.ErrNotReady, "no reads before the snapshot")

	// A round after the join point arrives before the snapshot: it re-adds
	// an id the snapshot also carries, which must count once.
	require.NoError(t, prepare(joiner, wire.PrepareRequest{Round: rid(5), Stable: 4, Items: items("acme", "c", "d")}))
	require.NoError(t, joiner.Commit(wire.DecisionRequest{Round: rid(5), Stable: 4}))

	rows, err := source.Snapshot(resp.Since, 4)
	require.NoError(t, err)
	assert.Len(t, rows, 2, "c and x")
	require.NoError(t, joiner.Merge("", 4, rows))
	require.NoError(t, joiner.FinishSync("", 4))

	assert.Equal(t, int64(3), count(t, joiner, 4, "acme"), "a, b, c as of seq 4")
	assert.Equal(t, int64(4), count(t, joiner, 5, "acme"), "and d at seq 5")
	assert.Equal(t, int64(1), count(t, joiner, 5, "globex"))
}

func TestLedger_JoinOfAnotherHistoryWipes(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 1, items("acme", "a")...)
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "other", Last: wire.Decision{Round: rid(5), Commit: true}, Committed: rid(5)})
	require.NoError(t, err)
	assert.False(t, resp.Complete)
	assert.Equal(t, uint64(0), resp.Since)
	assert.Empty(t, ids(t, l, "acme"))
}

func TestLedger_MergeRefusesRowsOutsideTheSession(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 1, items("acme", "a")...)
	resp := joinFrom(t, l, wire.Decision{Round: rid(3), Commit: true}, rid(3), 3)
	require.False(t, resp.Complete)
	assert.ErrorIs(t, l.Merge("", 2, nil), ledger.ErrSyncMismatch, "wrong join point")
	assert.ErrorIs(t, l.Merge("", 3, []wire.SnapshotEntry{{Tenant: "acme", ID: "z", Seq: 4}}), ledger.ErrSyncMismatch, "row after the join point")
	assert.ErrorIs(t, l.Merge("", 3, []wire.SnapshotEntry{{Tenant: "acme", ID: "z", Seq: 1}}), ledger.ErrSyncMismatch, "row in the kept prefix")
}

func TestLedger_SnapshotNeedsAppliedRows(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	_, err := l.Snapshot(0, 2)
	assert.ErrorIs(t, err, ledger.ErrBehind)
}

func TestLedger_StatusReportsPosition(t *testing.T) {
	l := ready(t)
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(1), View: []string{"c1", "c2"}, Items: items("acme", "a")}))
	st := l.Status()
	assert.Equal(t, wire.ModeReady, st.Mode)
	require.NotNil(t, st.Staged)
	assert.Equal(t, rid(1), *st.Staged)
	assert.Equal(t, []string{"c1", "c2"}, st.View)
	assert.Equal(t, rid(1), st.ViewRound)

	require.NoError(t, l.Commit(wire.DecisionRequest{Round: rid(1)}))
	st = l.Status()
	assert.Nil(t, st.Staged)
	assert.Equal(t, rid(1), st.Last)
	assert.Equal(t, rid(1), st.Committed)
	assert.True(t, st.LastCommitted)
	assert.Equal(t, 1, st.Items)
}

func TestLedger_DecisionMustNameTheStagedTransaction(t *testing.T) {
	l := ready(t)
	staged := wire.RoundID{Epoch: epoch, Seq: 1, TxID: "tx-a"}
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: staged, Items: items("acme", "a")}))
	other := wire.RoundID{Epoch: epoch, Seq: 1, TxID: "tx-b"}
	assert.ErrorIs(t, l.Commit(wire.DecisionRequest{Round: other}), ledger.ErrUnknownRound)
	require.NoError(t, l.Commit(wire.DecisionRequest{Round: staged, Stable: 1}))
	assert.Equal(t, int64(1), count(t, l, 1, "acme"))
}

func TestLedger_LateJoinIsRefused(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	commit(t, l, 2, 1, items("acme", "b")...)
	// A join sent at seq 1, delayed past rounds the counter then applied.
	_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", Last: wire.Decision{Round: rid(1), Commit: true}, Committed: rid(1)})
	assert.ErrorIs(t, err, ledger.ErrOutOfOrder)
	assert.Equal(t, int64(2), count(t, l, 2, "acme"), "and changed nothing")
}

func TestLedger_RejoinInTheSameEpochKeepsUnstableRows(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	commit(t, l, 2, 1, items("acme", "b")...) // committed; never heard to be stable
	// It was marked dead; the cluster went on to round 4.
	resp := joinFrom(t, l, wire.Decision{Round: rid(4), Commit: true}, rid(4), 4)
	require.False(t, resp.Complete)
	assert.Equal(t, uint64(2), resp.Since, "its own coordinator decided round 2: it stays")
	assert.Equal(t, []string{"a", "b"}, ids(t, l, "acme"))
}

func TestLedger_RejoinAfterANewEpochKeepsOnlyStableRows(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	commit(t, l, 2, 1, items("acme", "b")...)
	// A restarted coordinator (epoch 8) may have aborted round 2.
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch + 1, ClusterID: "cl",
		Last: wire.Decision{Round: wire.RoundID{Epoch: epoch + 1, Seq: 3}, Commit: true}, Committed: wire.RoundID{Epoch: epoch + 1, Seq: 3}})
	require.NoError(t, err)
	require.False(t, resp.Complete)
	assert.Equal(t, uint64(1), resp.Since)
	assert.Equal(t, []string{"a"}, ids(t, l, "acme"))
}

// TestLedger_ASupersededSyncSessionCannotFinishTheNewOne is the regression
// test of a counter that went live with rows missing: a second join at the
// same seq dropped the rows merged so far, and the first session's stream,
// still running, merged its last rows and finished the new session.
func TestLedger_ASupersededSyncSessionCannotFinishTheNewOne(t *testing.T) {
	source := ready(t)
	commit(t, source, 1, 0, items("acme", "a", "b", "c")...)
	commit(t, source, 2, 1)
	last := wire.Decision{Round: rid(2), Commit: true}

	l := open(t, "c2", "inc-2")
	join := func(syncID string) {
		_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: syncID, Last: last, Committed: rid(2), Stable: 2})
		require.NoError(t, err)
	}
	row := func(id string) []wire.SnapshotEntry { return []wire.SnapshotEntry{{Tenant: "acme", ID: id, Seq: 1}} }
	join("s1")
	require.NoError(t, l.Merge("s1", 2, append(row("a"), row("b")...)))
	join("s2") // the same join point: the coordinator lost track of s1
	assert.ErrorIs(t, l.Merge("s1", 2, row("c")), ledger.ErrSyncMismatch, "s1's stream goes on, into nothing")
	assert.ErrorIs(t, l.FinishSync("s1", 2), ledger.ErrSyncMismatch, "s1 cannot finish s2")
	assert.Equal(t, wire.ModeSyncing, l.Status().Mode, "no reads until s2 is complete")

	require.NoError(t, l.Merge("s2", 2, append(append(row("a"), row("b")...), row("c")...)))
	require.NoError(t, l.FinishSync("s2", 2))
	assert.Equal(t, int64(3), count(t, l, 2, "acme"))
}

// TestLedger_SnapshotInPiecesLetsRoundsGoOnAndIsCutByAJoin: a snapshot is
// served in pieces from an engine snapshot; rounds applied in between do
// not change it, and a join (the only thing that removes rows) cuts it.
func TestLedger_SnapshotInPiecesLetsRoundsGoOnAndIsCutByAJoin(t *testing.T) {
	l := ready(t)
	for i := range 5 {
		commit(t, l, uint64(i+1), uint64(i), items(fmt.Sprintf("t%d", i), "a", "b")...)
	}
	cur, err := l.StartSnapshot(0, 5)
	require.NoError(t, err)
	defer cur.Close()
	rows, done, err := cur.Next(1, nil)
	require.NoError(t, err)
	assert.False(t, done)
	assert.Len(t, rows, 1)
	commit(t, l, 6, 5, items("t0", "c")...) // a round between two pieces
	commit(t, l, 7, 6, items("new", "x")...)
	for !done {
		require.NoError(t, l.CheckSnapshot(cur))
		rows, done, err = cur.Next(3, rows)
		require.NoError(t, err)
	}
	assert.Len(t, rows, 10, "the rows up to seq 5, none applied since")
	for i, r := range rows {
		assert.LessOrEqual(t, r.Seq, uint64(5))
		if i > 0 {
			assert.LessOrEqual(t, rows[i-1].Seq, r.Seq, "in seq order")
		}
	}

	cur2, err := l.StartSnapshot(0, 7)
	require.NoError(t, err)
	defer cur2.Close()
	_, _, err = cur2.Next(1, nil)
	require.NoError(t, err)
	_, err = l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", Last: wire.Decision{Round: rid(7), Commit: true}, Committed: rid(7), Stable: 7})
	require.NoError(t, err)
	assert.ErrorIs(t, l.CheckSnapshot(cur2), ledger.ErrSnapshotStale)
}

// TestLedger_JoinAppliesAStagedRoundTheClusterCommitted is the regression
// test of a cluster that never came back (found by the chaos test): every
// voter of a round decided commit missed the commit, later rounds aborted,
// and on rejoin each voter dropped the staged round; none held the
// cluster's last committed round, so none was complete and there was no
// source to sync from. The staged round is the cluster's last committed
// one: a join applies it.
func TestLedger_JoinAppliesAStagedRoundTheClusterCommitted(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(2), Stable: 1, Items: items("acme", "b", "c")}))
	// The commit of round 2 never arrives; round 3 is aborted elsewhere.
	resp := joinFrom(t, l, wire.Decision{Round: rid(3)}, rid(2), 1)
	assert.True(t, resp.Complete, "it holds the last committed round")
	assert.Equal(t, wire.ModeReady, l.Status().Mode)
	assert.Equal(t, int64(3), count(t, l, 2, "acme"))
}

// TestLedger_AJoinBehindAStagedRoundIsRefused is the regression test of a
// cluster the chaos test left stuck: a join sent at seq 133 (outside the
// committer loop, or delivered late) reached a counter that had already
// voted on round 134, dropped its staged round, and the commit of 134 found
// nothing; the only other copy of 134 was on a counter still syncing.
func TestLedger_AJoinBehindAStagedRoundIsRefused(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(2), Stable: 1, Items: items("acme", "b")}))
	_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "late", Last: wire.Decision{Round: rid(1), Commit: true}, Committed: rid(1), Stable: 1})
	require.ErrorIs(t, err, ledger.ErrOutOfOrder)
	require.NoError(t, l.Commit(wire.DecisionRequest{Round: rid(2), Stable: 2}), "the vote still stands")
	assert.Equal(t, int64(2), count(t, l, 2, "acme"))
}

// TestLedger_ADuplicatedJoinKeepsItsSession: a join delivered twice (a
// duplicating network path) answers the same and does not truncate the
// rows merged into its session in between.
func TestLedger_ADuplicatedJoinKeepsItsSession(t *testing.T) {
	l := open(t, "c2", "inc-2")
	last := wire.Decision{Round: rid(2), Commit: true}
	req := wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "s1", Last: last, Committed: rid(2), Stable: 2}
	first, err := l.Join(req)
	require.NoError(t, err)
	require.NoError(t, l.Merge("s1", 2, []wire.SnapshotEntry{{Tenant: "acme", ID: "a", Seq: 1}, {Tenant: "acme", ID: "b", Seq: 2}}))
	again, err := l.Join(req)
	require.NoError(t, err)
	assert.Equal(t, first, again)
	require.NoError(t, l.Merge("s1", 2, []wire.SnapshotEntry{{Tenant: "acme", ID: "c", Seq: 2}}))
	require.NoError(t, l.FinishSync("s1", 2))
	assert.Equal(t, int64(3), count(t, l, 2, "acme"), "the rows merged before the duplicate are kept")
}

// TestLedger_ARepeatedJoinAtALaterPointIsANewJoin: only a duplicate of the
// same join is answered from memory; the same session at a later join
// point (the coordinator trying again after a round ran) joins there.
// The abuse test found this: a counter answered a retried join with its
// first answer, stayed at the old seq, and refused the next round.
func TestLedger_ARepeatedJoinAtALaterPointIsANewJoin(t *testing.T) {
	l := open(t, "c2", "inc-2")
	_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "s1"})
	require.NoError(t, err)
	_, err = l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "s1", Last: wire.Decision{Round: rid(1)}})
	require.NoError(t, err)
	assert.Equal(t, rid(1), l.Status().Last, "joined at the later point")
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(2), Stable: 1}), "so it takes the next round")
}

// prepare stages a round on l and returns only whether it voted yes.
func prepare(l *ledger.Ledger, req wire.PrepareRequest) error {
	_, err := l.Prepare(req)
	return err
}

// TestLedger_AVoteCountsTheNewIDsPerTenant: a yes carries how many of the
// round's ids are new, per tenant: not held, not repeated in the round.
func TestLedger_AVoteCountsTheNewIDsPerTenant(t *testing.T) {
	l := ready(t)
	commit(t, l, 1, 0, items("acme", "a")...)
	its := append(items("acme", "a", "b", "b", "c"), items("beta", "x")...)
	its = append(its, items("gamma", "a")...)
	vote, err := l.Prepare(wire.PrepareRequest{Round: rid(2), Stable: 1, Items: its})
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"acme": 2, "beta": 1, "gamma": 1}, vote.Added)
	again, err := l.Prepare(wire.PrepareRequest{Round: rid(2), Stable: 1, Items: its})
	require.NoError(t, err)
	assert.Equal(t, vote, again, "a duplicated prepare gets the same vote")
	require.NoError(t, l.Commit(wire.DecisionRequest{Round: rid(2), Stable: 2}))
	n, at, err := l.CountAt(epoch, 2, "acme")
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "1 held + 2 the vote said")
	assert.Equal(t, uint64(2), at)
}
