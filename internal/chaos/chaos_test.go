package chaos_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/distributed-counter/distributed-counter/internal/chaos"
)

// TestChaos_FixedSeeds runs a short, fixed set of schedules on every
// `make test`. `make chaos` runs random seeds for longer.
func TestChaos_FixedSeeds(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			res := chaos.Run(t, chaos.Config{Seed: seed, Duration: 3 * time.Second, ArtifactDir: t.TempDir()})
			for _, v := range res.Report.Violations {
				t.Errorf("violation: %s", v)
			}
			if res.Failed() {
				t.Logf("reproduce with: go run ./cmd/chaos -seed %d; events: %v; visualisation: %s", seed, res.Events, res.Artifact)
			}
			assert.Greater(t, res.Ops, 100, "the workload ran")
			assert.Positive(t, res.Faults, "the nemesis injected faults")
		})
	}
}

// TestAbuse_AttackersChangeNothingForOrdinaryClients: while ordinary
// clients add and read, attackers send every malformed, oversized and odd
// request to every public route, and every internal route without the
// token or with a wrong one and forged bodies. No acknowledged item is
// lost, no counter is marked dead, no ordinary request fails, every attack
// gets a 4xx (or 503 overloaded), and the history passes every checker.
func TestAbuse_AttackersChangeNothingForOrdinaryClients(t *testing.T) {
	dir := t.TempDir()
	// 6 s: under the load of the other packages' tests (a browser among them)
	// 4 s sometimes let fewer than 100 attacks through.
	res := chaos.Run(t, chaos.Config{Seed: 7, Calm: true, Attackers: 3, Duration: 6 * time.Second, MaxOpsPerClient: 300, ArtifactDir: dir})
	for _, v := range res.Report.Violations {
		t.Errorf("violation: %s", v)
	}
	if res.Failed() {
		// The warnings of the run's log say what happened; the directory goes with the test.
		if data, err := os.ReadFile(filepath.Join(dir, "chaos-seed-7.log")); err == nil {
			for line := range strings.Lines(string(data)) {
				if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
					t.Log(strings.TrimSpace(line))
				}
			}
		}
	}
	assert.Greater(t, res.Ops, 100, "the ordinary workload ran")
	assert.Greater(t, res.Attacks, 100, "the attackers ran")
}
