package chaos_test

import (
	"fmt"
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
