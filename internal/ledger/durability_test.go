package ledger_test

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// openOn opens the ledger in "data" on fs, closed with the test.
func openOn(t *testing.T, fs vfs.FS, opts ledger.Options) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(fs, "data", opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// crashedAfter commits rounds 1..n (one new id each) on a crashable file
// system, stages round n+1, and returns what a power cut leaves: only
// what was synced.
func crashedAfter(t *testing.T, n int, opts ledger.Options) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewCrashableMem()
	opts.ID = "c1"
	l := openOn(t, fs, opts)
	_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl"})
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		commit(t, l, uint64(i), uint64(i-1), items("acme", fmt.Sprintf("%0100d", i))...)
	}
	require.NoError(t, prepare(l, wire.PrepareRequest{Round: rid(uint64(n + 1)), Items: items("acme", "staged")}))
	return fs.CrashClone(vfs.CrashCloneCfg{})
}

// TestLedger_ACrashKeepsEveryCommittedRound (D1): after a power cut the
// ledger has every round it committed, with its identity and position;
// only the staged round, never acknowledged, is gone (D2).
func TestLedger_ACrashKeepsEveryCommittedRound(t *testing.T) {
	crashed := crashedAfter(t, 20, ledger.Options{})
	l := openOn(t, crashed, ledger.Options{Incarnation: "after"})
	st := l.Status()
	assert.Equal(t, "c1", st.ID, "the identity lives in the data")
	assert.Equal(t, rid(20), st.Committed)
	assert.Equal(t, wire.ModeReady, st.Mode)
	assert.Nil(t, st.Staged)
	assert.Equal(t, 20, st.Items)
	assert.Len(t, ids(t, l, "acme"), 20)

	// Until it is joined again it takes no round and serves no read.
	assert.ErrorIs(t, prepare(l, wire.PrepareRequest{Round: rid(21)}), ledger.ErrNotMember)
	_, err := l.Count(epoch, 20, "acme")
	assert.ErrorIs(t, err, ledger.ErrNotReady)

	// D3: re-joined where the cluster went on without it, it keeps its rows
	// and needs only the rounds it missed.
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "s", Last: wire.Decision{Round: rid(25), Commit: true}, Committed: rid(25), Stable: 25})
	require.NoError(t, err)
	assert.False(t, resp.Complete)
	assert.Equal(t, uint64(20), resp.Since, "a delta: rounds 21..25 only")
	// Re-joined at its own last commit, it is complete at once.
	l2 := openOn(t, crashedAfter(t, 5, ledger.Options{}), ledger.Options{Incarnation: "again"})
	resp, err = l2.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", Last: wire.Decision{Round: rid(5), Commit: true}, Committed: rid(5), Stable: 5})
	require.NoError(t, err)
	assert.True(t, resp.Complete)
	n, err := l2.Count(epoch+1, 5, "acme")
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)
}

// TestLedger_WithoutSyncACrashLosesCommittedRounds proves the crash test
// can fail: with NoSync the same power cut loses acknowledged rounds.
func TestLedger_WithoutSyncACrashLosesCommittedRounds(t *testing.T) {
	crashed := crashedAfter(t, 20, ledger.Options{NoSync: true})
	l := openOn(t, crashed, ledger.Options{})
	assert.Less(t, l.Status().Items, 20, "unsynced commits are lost")
}

// TestLedger_FenceSurvivesARestart: the fence adopted at registration is
// on disk when AdoptFence returns.
func TestLedger_FenceSurvivesARestart(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openOn(t, fs, ledger.Options{ID: "c1"})
	raised, err := l.AdoptFence(9)
	require.NoError(t, err)
	assert.True(t, raised)
	l2 := openOn(t, fs.CrashClone(vfs.CrashCloneCfg{}), ledger.Options{})
	assert.Equal(t, uint64(9), l2.Status().Fence)
	_, err = l2.Join(wire.JoinRequest{Epoch: 8, ClusterID: "cl"})
	assert.ErrorIs(t, err, ledger.ErrStaleEpoch)
}

// walFiles returns the write-ahead logs of the data directory, oldest first.
func walFiles(t *testing.T, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List("data")
	require.NoError(t, err)
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, fs.PathJoin("data", n))
		}
	}
	slices.Sort(logs)
	require.NotEmpty(t, logs)
	return logs
}

// rewrite replaces a file's content with edit(content).
func rewrite(t *testing.T, fs vfs.FS, name string, edit func([]byte) []byte) {
	t.Helper()
	f, err := fs.Open(name)
	require.NoError(t, err)
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	w, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	_, err = w.Write(edit(data))
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	require.NoError(t, w.Close())
}

// TestLedger_ATornTailRecoversToTheLastWholeRound (D5): the last bytes of
// the log are cut, as by a power cut in the middle of a write. The ledger
// comes back at a whole round, its rows and counts agreeing, never half
// of one.
func TestLedger_ATornTailRecoversToTheLastWholeRound(t *testing.T) {
	for _, cut := range []int{1, 7, 40, 150} {
		crashed := crashedAfter(t, 50, ledger.Options{})
		logs := walFiles(t, crashed)
		rewrite(t, crashed, logs[len(logs)-1], func(b []byte) []byte { return b[:max(0, len(b)-cut)] })
		l := openOn(t, crashed, ledger.Options{})
		st := l.Status()
		assert.LessOrEqual(t, st.Committed.Seq, uint64(50), "cut %d", cut)
		assert.GreaterOrEqual(t, st.Committed.Seq, uint64(48), "cut %d: only the torn round is lost", cut)
		assert.Equal(t, int(st.Committed.Seq), st.Items, "cut %d: the position and the rows agree", cut)
		assert.Len(t, ids(t, l, "acme"), st.Items, "cut %d", cut)
	}
}

// TestLedger_DamageBeforeTheTailRefusesToStart (D5): a corrupt byte well
// before the end of the log, with synced records after it, is not a torn
// write but lost data: Open fails with a clear error instead of serving
// the rounds before it as if they were all.
func TestLedger_DamageBeforeTheTailRefusesToStart(t *testing.T) {
	crashed := crashedAfter(t, 600, ledger.Options{}) // a log of several 32 KiB blocks
	logs := walFiles(t, crashed)
	rewrite(t, crashed, logs[len(logs)-1], func(b []byte) []byte {
		require.Greater(t, len(b), 64<<10)
		b[len(b)/4] ^= 0xff
		return b
	})
	_, err := ledger.Open(crashed, "data", ledger.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "data")
}

// TestLedger_AFullSnapshotBesideNewRoundsCountsEachIDOnce: a counter with
// no rows merges a full snapshot without looking rows up; a round applied
// after its join brought an id the snapshot has with a lower seq, and a
// retried transfer may send every row again. After FinishSync each id
// counts once, with its lowest seq, whether one stream or two arrived.
func TestLedger_AFullSnapshotBesideNewRoundsCountsEachIDOnce(t *testing.T) {
	for _, streams := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d streams", streams), func(t *testing.T) {
			l := open(t, "c2", "inc-2")
			join := rid(5)
			_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "s", Last: wire.Decision{Round: join, Commit: true}, Committed: join, Stable: 5})
			require.NoError(t, err)
			commit(t, l, 6, 5, items("acme", "x", "new")...) // x is also in the snapshot, at seq 2
			rows := []wire.SnapshotEntry{{Tenant: "acme", ID: "a", Seq: 1}, {Tenant: "acme", ID: "x", Seq: 2}, {Tenant: "beta", ID: "b", Seq: 5}}
			for range streams {
				require.NoError(t, l.BeginInstall("s", 5))
				require.NoError(t, l.Merge("s", 5, rows))
			}
			require.NoError(t, l.FinishSync("s", 5))

			assert.Equal(t, []string{"a", "new", "x"}, ids(t, l, "acme"))
			n, _, err := l.LocalCount("acme")
			require.NoError(t, err)
			assert.Equal(t, int64(3), n)
			assert.Equal(t, int64(2), count(t, l, 5, "acme"), "as of seq 5: a and x; new is not stable")
			assert.Equal(t, int64(1), count(t, l, 5, "beta"))
			st := l.Status()
			assert.Equal(t, 4, st.Items)
			assert.Equal(t, 2, st.Tenants)
			snap, err := l.Snapshot(0, 6)
			require.NoError(t, err)
			assert.ElementsMatch(t, []wire.SnapshotEntry{{Tenant: "acme", ID: "a", Seq: 1}, {Tenant: "acme", ID: "x", Seq: 2}, {Tenant: "beta", ID: "b", Seq: 5}, {Tenant: "acme", ID: "new", Seq: 6}}, snap,
				"x once, at its lowest seq")
		})
	}
}

// TestLedger_ASyncCutByACrashStillHoldsWhatItHeld is the regression test
// of acknowledged items lost (found by the chaos power cuts): a ready
// counter that was re-joined, and lost power before its sync finished,
// came back saying only "syncing", and a restarted coordinator, hearing no
// ready holder, started a new, empty history. It now says what it still
// holds, and a join at that round makes it complete again, without the
// rows of the rounds it applied since its join.
func TestLedger_ASyncCutByACrashStillHoldsWhatItHeld(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openOn(t, fs, ledger.Options{ID: "c1"})
	_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl"})
	require.NoError(t, err)
	for i := 1; i <= 5; i++ {
		commit(t, l, uint64(i), uint64(i-1), items("acme", fmt.Sprint(i))...)
	}
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", SyncID: "s", Last: wire.Decision{Round: rid(6), Commit: true}, Committed: rid(6), Stable: 5})
	require.NoError(t, err)
	require.False(t, resp.Complete)
	commit(t, l, 7, 5, items("acme", "after-the-join")...)
	assert.Equal(t, rid(5), l.Status().Holds, "while syncing it holds what it held at the join")

	l2 := openOn(t, fs.CrashClone(vfs.CrashCloneCfg{}), ledger.Options{})
	st := l2.Status()
	assert.Equal(t, wire.ModeSyncing, st.Mode)
	assert.Equal(t, rid(5), st.Holds, "a crash does not change what it holds")

	// A coordinator that resumed from round 5 joins it there.
	resp, err = l2.Join(wire.JoinRequest{Epoch: epoch + 1, ClusterID: "cl", Last: wire.Decision{Round: rid(5), Commit: true}, Committed: rid(5), Stable: 5})
	require.NoError(t, err)
	assert.True(t, resp.Complete)
	assert.Len(t, ids(t, l2, "acme"), 5, "round 7's row is not in the resumed history")
	n, err := l2.Count(epoch+1, 5, "acme")
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)
}

// TestLedger_ARestartedCounterKeepsTheRoundsANewEpochResumedFrom is the
// regression test of acknowledged items deleted from every copy (found by
// the chaos power cuts): a coordinator restarted and resumed from round
// 30, which every counter held; then each counter restarted, and its join
// by the new epoch kept only its stable rows (29) and dropped round 30,
// which nobody could send it again. A join names the round its epoch
// resumed from; rows up to it stay.
func TestLedger_ARestartedCounterKeepsTheRoundsANewEpochResumedFrom(t *testing.T) {
	l := ready(t)
	for i := 1; i <= 30; i++ {
		commit(t, l, uint64(i), uint64(i-1), items("acme", fmt.Sprint(i))...)
	}
	next := wire.RoundID{Epoch: epoch + 1, Seq: 31}
	resp, err := l.Join(wire.JoinRequest{Epoch: epoch + 1, ClusterID: "cl", SyncID: "s", Last: wire.Decision{Round: next, Commit: true},
		Committed: next, Stable: 30, Base: rid(30)})
	require.NoError(t, err)
	assert.Equal(t, uint64(30), resp.Since, "round 30 is in the resumed history: only round 31 is missing")
	assert.Len(t, ids(t, l, "acme"), 30)

	// Without the base, only the stable rows could be kept.
	l2 := ready(t)
	for i := 1; i <= 30; i++ {
		commit(t, l2, uint64(i), uint64(i-1), items("acme", fmt.Sprint(i))...)
	}
	resp, err = l2.Join(wire.JoinRequest{Epoch: epoch + 1, ClusterID: "cl", SyncID: "s", Last: wire.Decision{Round: next, Commit: true},
		Committed: next, Stable: 30})
	require.NoError(t, err)
	assert.Equal(t, uint64(29), resp.Since)
}

// TestLedger_AnIDHeldIsNeverNewAgain: the lookup that tells a new id
// from a held one is answered in memory when it can (idFilter). Whatever
// brought the id (a round before a restart, a full snapshot after a wipe,
// a delta snapshot), a round that repeats it must not count it again.
func TestLedger_AnIDHeldIsNeverNewAgain(t *testing.T) {
	held := fmt.Sprintf("%0100d", 3)
	newOnly := func(t *testing.T, l *ledger.Ledger, seq uint64, its ...wire.Item) {
		t.Helper()
		vote, err := l.Prepare(wire.PrepareRequest{Round: rid(seq), Stable: seq - 1, Items: its})
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"acme": 1}, vote.Added, "only the new id is new")
		require.NoError(t, l.Commit(wire.DecisionRequest{Round: rid(seq), Stable: seq - 1}))
		n, _, err := l.LocalCount("acme")
		require.NoError(t, err)
		assert.Equal(t, int64(l.Status().Items), n, "the count follows the vote")
	}

	t.Run("after a restart", func(t *testing.T) {
		l := openOn(t, crashedAfter(t, 20, ledger.Options{}), ledger.Options{Incarnation: "after"})
		_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl", Last: wire.Decision{Round: rid(20), Commit: true}, Committed: rid(20), Stable: 20})
		require.NoError(t, err)
		// The filter is filled in the background: the lookups below must
		// be the filter's, not the engine's it falls back to meanwhile.
		deadline := time.Now().Add(10 * time.Second)
		for !ledger.FilterComplete(l) {
			require.True(t, time.Now().Before(deadline), "the scan of Open did not finish")
			time.Sleep(time.Millisecond) // polling the background scan
		}
		newOnly(t, l, 21, items("acme", held, "new")...)
	})

	t.Run("after a full snapshot", func(t *testing.T) {
		l := ready(t)
		commit(t, l, 1, 0, items("acme", "old")...)
		_, err := l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "other", SyncID: "s", Last: wire.Decision{Round: rid(5), Commit: true}, Committed: rid(5), Stable: 5})
		require.NoError(t, err)
		require.NoError(t, l.BeginInstall("s", 5))
		require.NoError(t, l.Merge("s", 5, []wire.SnapshotEntry{{Tenant: "acme", ID: held, Seq: 2}}))
		require.NoError(t, l.FinishSync("s", 5))
		newOnly(t, l, 6, items("acme", held, "new")...)
	})

	t.Run("after a delta snapshot", func(t *testing.T) {
		source, joiner := ready(t), ready(t)
		commit(t, source, 1, 0, items("acme", "a")...)
		commit(t, joiner, 1, 0, items("acme", "a")...)
		commit(t, source, 2, 1, items("acme", held)...)
		resp := joinFrom(t, joiner, wire.Decision{Round: rid(2), Commit: true}, rid(2), 2)
		require.False(t, resp.Complete)
		rows, err := source.Snapshot(resp.Since, 2)
		require.NoError(t, err)
		require.NoError(t, joiner.Merge("", 2, rows))
		require.NoError(t, joiner.FinishSync("", 2))
		newOnly(t, joiner, 3, items("acme", held, "new")...)
	})
}
