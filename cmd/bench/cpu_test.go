package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCPUUse_CountsTheProcessesAliveAtBothSamples: a process's use is its
// ticks between the samples, summed by name; a process that started or
// ended in between, or a pid reused by another name, adds nothing, and a
// name under 1% of the host is left out.
func TestCPUUse_CountsTheProcessesAliveAtBothSamples(t *testing.T) {
	a := cpuSample{total: 1000, idle: 300, switches: 7_000, procs: map[int]procTime{
		1: {"counter", 100}, 2: {"counter", 50}, 3: {"coordinator", 10}, 4: {"ended", 5}, 5: {"old", 1}, 6: {"tiny", 0},
	}}
	b := cpuSample{total: 3000, idle: 500, switches: 32_000, procs: map[int]procTime{
		1: {"counter", 400}, 2: {"counter", 250}, 3: {"coordinator", 260}, 5: {"new", 900}, 7: {"started", 700}, 6: {"tiny", 10},
	}}
	u := b.since(a)
	assert.InDelta(t, 20.0, u.HostSeconds, 1e-9)
	assert.InDelta(t, 2.0, u.IdleSeconds, 1e-9)
	assert.Equal(t, map[string]float64{"counter": 5, "coordinator": 2.5}, u.ByProcess)
	assert.Equal(t, uint64(25_000), u.ContextSwitches)
	assert.Equal(t, "CPU-seconds of the host's 20.0: counter 5.0, coordinator 2.5, idle 2.0", u.String())
	assert.Equal(t, "CPU per request, µs, of the host's 2000: counter 500, coordinator 250, idle 200; 2.5 context switches", u.PerRequest(10_000))
	assert.Equal(t, "no request answered", u.PerRequest(0))
}

// TestSampleCPU_SeesThisProcessWork: on Linux, work done between two
// samples shows under this test binary's name.
func TestSampleCPU_SeesThisProcessWork(t *testing.T) {
	before, ok := sampleCPU()
	if !ok {
		t.Skip("no /proc here")
	}
	sum := [32]byte{}
	for range 2_000_000 { // a fraction of a second of CPU, bounded
		sum = sha256.Sum256(sum[:])
	}
	after, ok := sampleCPU()
	require.True(t, ok)
	exe, err := os.Executable()
	require.NoError(t, err)
	name := filepath.Base(exe)
	if len(name) > 15 {
		name = name[:15] // the kernel keeps 15 bytes of a name
	}
	u := after.since(before)
	assert.Positive(t, u.ByProcess[name], "this process (%s) worked: %v", name, u)
	assert.Positive(t, u.HostSeconds)
	assert.Positive(t, u.ContextSwitches, "the host switched threads at least once during the work")
}
