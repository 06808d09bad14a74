package coordinator

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/twopc"
)

func TestStateFile_SavesAtomicallyAndLoadsBack(t *testing.T) {
	dir := t.TempDir()
	f := newStateFile(dir)
	_, ok, err := f.load()
	require.NoError(t, err)
	assert.False(t, ok, "no state yet")

	b, a := twopc.Holder{ID: "b", Incarnation: "b1", Live: true}, twopc.Holder{ID: "a", Incarnation: "a1"}
	require.NoError(t, f.save(persisted{ClusterID: "c", Epoch: 3, Holders: []twopc.Holder{b, a}}))
	got, ok, err := newStateFile(dir).load()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, persisted{ClusterID: "c", Epoch: 3, Holders: []twopc.Holder{a, b}}, got)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestStateFile_CorruptFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, stateFileName), []byte("{"), 0o644))
	_, _, err := newStateFile(dir).load()
	assert.Error(t, err)
}

func TestStateFile_NoDirSavesNothing(t *testing.T) {
	f := newStateFile("")
	require.NoError(t, f.save(persisted{ClusterID: "c"}))
	_, ok, err := f.load()
	require.NoError(t, err)
	assert.False(t, ok)
}

// TestRun_ExitsWhenRecoveryCannotRecordItsHolders is the regression test of
// a zombie coordinator: recovery left "recovering" before writing its state
// file, and when the write failed the committer never ran while /health
// said ok and every write waited for a 504. Now Run stops and returns the
// error, for its supervisor to restart it.
func TestRun_ExitsWhenRecoveryCannotRecordItsHolders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := Config{
		HealthInterval: time.Second, RecoveryTries: 1, RequestTimeout: time.Second, CounterTimeout: time.Second,
		SyncTimeout: time.Second, HTTPTimeout: time.Second, MaxBodyBytes: 1 << 10, MaxItemsPerRequest: 10,
		MaxInflightRequests: 10, MaxInflightBytes: 1 << 20, MaxConnections: 10, MaxQueuedRequests: 10,
		MaxRoundBytes: 1 << 20, MaxCounters: 4, MinLiveCounters: 1, MaxBatchItems: 10, MaxHeaderBytes: 16 << 10,
		RecoveryGrace: 300 * time.Millisecond, DataDir: dir, ShutdownTimeout: time.Second, LogLevel: "info",
		ClusterInsecure: true,
	}
	require.NoError(t, cfg.Validate())
	public, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	internal, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		done <- Run(t.Context(), cfg, public, internal, &http.Client{Timeout: time.Second}, slog.New(slog.DiscardHandler))
	}()
	// The data directory disappears (a volume gone read-only would do the
	// same) before recovery writes the holders it found.
	// (After the coordinator has reserved its epoch in the file.)
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(dir, stateFileName)); return err == nil }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o600)) // a file where the directory was

	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "recovery")
	case <-time.After(10 * time.Second):
		t.Fatal("the coordinator kept running after its recovery failed")
	}
}

// TestRun_ReservesItsEpochBeforeServing (from a review): two coordinators
// started in the same second, the first never finishing its recovery, used
// to get the same fence, so the first could wake up and be obeyed. Each now
// reserves its fence in the state file before it serves, and the next one
// fences above it; a file with a fence alone records no holders.
func TestRun_ReservesItsEpochBeforeServing(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		HealthInterval: time.Second, RecoveryTries: 1, RequestTimeout: time.Second, CounterTimeout: time.Second,
		SyncTimeout: time.Second, HTTPTimeout: time.Second, MaxBodyBytes: 1 << 10, MaxItemsPerRequest: 10,
		MaxInflightRequests: 10, MaxInflightBytes: 1 << 20, MaxConnections: 10, MaxQueuedRequests: 10,
		MaxRoundBytes: 1 << 20, MaxCounters: 4, MinLiveCounters: 1, MaxBatchItems: 10, MaxHeaderBytes: 16 << 10,
		RecoveryGrace: time.Hour, DataDir: dir, ShutdownTimeout: time.Second, LogLevel: "info", ClusterInsecure: true,
	}
	fences := make([]uint64, 2)
	for i := range fences {
		public, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		internal, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, cfg, public, internal, &http.Client{Timeout: time.Second}, slog.New(slog.DiscardHandler))
		}()
		require.Eventually(t, func() bool {
			p, ok, err := newStateFile(dir).load()
			if err != nil || !ok || p.Fence == 0 || (i > 0 && p.Fence == fences[0]) {
				return false // not reserved yet (or, for the second, not above the first)
			}
			fences[i] = p.Fence
			assert.False(t, p.recorded(), "a reserved fence records no holders")
			return true
		}, 5*time.Second, 5*time.Millisecond)
		cancel() // still recovering: it never wrote anything else
		require.NoError(t, <-done)
	}
	assert.Greater(t, fences[1], fences[0], "the second coordinator fences above the first")
	assert.GreaterOrEqual(t, fences[0], uint64(time.Now().Add(-time.Minute).Unix()))
}
