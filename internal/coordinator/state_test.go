package coordinator

import (
	"os"
	"path/filepath"
	"testing"

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
