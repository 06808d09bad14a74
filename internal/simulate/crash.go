package simulate

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// The crash test's load: writers each post batches of new ids, bounded in
// count and time, until every container is killed under them.
const (
	crashWriters   = 8
	crashTenants   = 5
	crashBatch     = 10
	crashMaxWrites = 5000            // per writer
	crashLoad      = 4 * time.Second // writes before the kill
)

// crashSteps is the scenario of `make crash-test`: every container of a
// cluster under writes is killed at once, started again in a random order
// without Compose, and must count every acknowledged item and nothing that
// was never attempted; then `down` and `up` must keep the counts exact.
func (r *runner) crashSteps() []step {
	acked, attempted := newModel(), newModel()
	var after map[string]int64
	return []step{
		{"start a fresh cluster", fmt.Sprintf("coordinator and %d counters running", counters), r.up},
		{"counters registered", fmt.Sprintf("%d counters live", counters), r.registered},
		{"write, and kill every container at once (SIGKILL)", "writes acknowledged before the kill; every container killed", func(ctx context.Context) (string, error) {
			return r.writeAndKill(ctx, acked, attempted)
		}},
		{"start the same containers in a random order, without Compose", "the coordinator recovers and every counter is live again", func(ctx context.Context) (string, error) {
			saw, err := r.startShuffled(ctx)
			if err != nil {
				return saw, err
			}
			reg, err := r.registered(ctx)
			return join(saw, reg), err
		}},
		{"count after the crash", "every acknowledged item counted, nothing beyond what was attempted", func(ctx context.Context) (string, error) {
			var err error
			after, err = r.between(ctx, acked, attempted)
			return describeCounts(after), err
		}},
		{"down, then up", "the data is on volumes: the same counts as after the crash, exactly", func(ctx context.Context) (string, error) {
			if err := r.compose.DownKeepingData(ctx); err != nil {
				return "", err
			}
			saw, err := r.up(ctx)
			if err != nil {
				return saw, err
			}
			reg, err := r.registered(ctx)
			if err != nil {
				return join(saw, reg), err
			}
			for t, want := range after {
				n, err := r.count(ctx, t)
				if err != nil {
					return join(saw, reg), err
				}
				if n != want {
					return join(saw, reg), fmt.Errorf("%s=%d after down and up, %d before", t, n, want)
				}
			}
			return join(saw, reg, describeCounts(after)), nil
		}},
	}
}

// writeAndKill runs the writers for crashLoad, kills every container while
// they write, and records what was acknowledged and what was attempted.
func (r *runner) writeAndKill(ctx context.Context, acked, attempted *model) (string, error) {
	coord, err := r.compose.Containers(ctx, "coordinator")
	if err != nil {
		return "", err
	}
	all := append(coord, r.counter...)
	var mu sync.Mutex
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	oks, fails := 0, 0
	for w := range crashWriters {
		wg.Go(func() {
			for n := 0; n < crashMaxWrites && wctx.Err() == nil; n++ {
				batch := make([]wire.Item, crashBatch)
				for k := range batch {
					t := fmt.Sprintf("crash-%d", (n+k)%crashTenants)
					batch[k] = wire.Item{ID: fmt.Sprintf("w%d-%d-%d", w, n, k), Tenant: t}
				}
				mu.Lock()
				attempted.add(batch)
				mu.Unlock()
				err := r.api.AddItems(wctx, batch)
				mu.Lock()
				if err == nil {
					acked.add(batch)
					oks++
				} else {
					fails++
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(crashLoad):
	}
	killErr := r.compose.Kill(ctx, all...)
	stop() // a write still in flight is not acknowledged: attempted only
	wg.Wait()
	if killErr != nil {
		return "", killErr
	}
	mu.Lock()
	defer mu.Unlock()
	if oks == 0 {
		return "", fmt.Errorf("no write was acknowledged before the kill (%d failed)", fails)
	}
	return fmt.Sprintf("%d requests acknowledged (%d items), %d failed; killed %d containers", oks, oks*crashBatch, fails, len(all)), nil
}

// startShuffled starts every container of the project again, in a random
// order, with docker start.
func (r *runner) startShuffled(ctx context.Context) (string, error) {
	coord, err := r.compose.Containers(ctx, "coordinator")
	if err != nil {
		return "", err
	}
	all := append(coord, r.counter...)
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var names []string
	for _, ct := range all {
		if err := r.compose.Start(ctx, ct); err != nil {
			return strings.Join(names, ", "), err
		}
		names = append(names, ct.Name)
	}
	// A counter may claim another slot than before: learn the ids again.
	if err := r.resolveIDs(ctx); err != nil {
		return strings.Join(names, ", "), err
	}
	return "started " + strings.Join(names, ", "), nil
}

// between reads every tenant and checks acked <= count <= attempted.
func (r *runner) between(ctx context.Context, acked, attempted *model) (map[string]int64, error) {
	got := make(map[string]int64)
	for _, t := range attempted.tenants() {
		n, err := r.count(ctx, t)
		if err != nil {
			return got, err
		}
		got[t] = n
		if lo, hi := acked.count(t), attempted.count(t); n < lo || n > hi {
			return got, fmt.Errorf("%s=%d, want between %d acknowledged and %d attempted", t, n, lo, hi)
		}
	}
	return got, nil
}

func describeCounts(counts map[string]int64) string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, counts[t]))
	}
	return "counts " + strings.Join(parts, " ")
}
