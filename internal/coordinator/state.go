package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/distributed-counter/distributed-counter/internal/twopc"
)

// persisted is the coordinator's only durable state: which history it runs,
// its epoch, and the counters that may hold the last committed round. It
// changes when membership changes, not on every round.
//
// A restarted coordinator rebuilds everything else from the counters'
// reports. Without this file it cannot tell a brand-new cluster from one
// whose data holders are briefly unreachable; with it, recovery waits for
// every holder to report, so it never starts over while a copy survives.
type persisted struct {
	ClusterID string         `json:"cluster_id"`
	Epoch     uint64         `json:"epoch"`
	Holders   []twopc.Holder `json:"holders"`
	// Fence is the epoch a starting coordinator reserved before it
	// answered any counter, so the next one fences above it even if this
	// one never finished recovering. A file with a fence but no cluster id
	// records no holders.
	Fence uint64 `json:"fence,omitempty"`
}

// recorded reports whether p names the holders of a history.
func (p persisted) recorded() bool { return p.ClusterID != "" }

// stateFile saves persisted atomically; an empty path saves nothing.
type stateFile struct {
	path string

	mu   sync.Mutex
	last persisted
}

const stateFileName = "coordinator-state.json"

func newStateFile(dir string) *stateFile {
	if dir == "" {
		return &stateFile{}
	}
	return &stateFile{path: filepath.Join(dir, stateFileName)}
}

// load reads the state; ok is false when there is none.
func (f *stateFile) load() (p persisted, ok bool, err error) {
	if f.path == "" {
		return p, false, nil
	}
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read %s: %w", f.path, err)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, false, fmt.Errorf("parse %s: %w", f.path, err)
	}
	f.mu.Lock()
	f.last = p
	f.mu.Unlock()
	return p, true, nil
}

// save writes p unless it is what was last written: to a temporary file,
// fsynced, renamed over the old one, and the directory fsynced, so a crash
// leaves either the old state or the new one.
func (f *stateFile) save(p persisted) error {
	if f.path == "" {
		return nil
	}
	p.Holders = slices.Clone(p.Holders)
	slices.SortFunc(p.Holders, func(a, b twopc.Holder) int { return strings.Compare(a.ID, b.ID) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.ClusterID == f.last.ClusterID && p.Epoch == f.last.Epoch && p.Fence == f.last.Fence && slices.Equal(p.Holders, f.last.Holders) {
		return nil
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, stateFileName+".tmp*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	f.last = p
	return nil
}
