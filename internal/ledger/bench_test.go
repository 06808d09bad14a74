package ledger_test

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// BenchmarkLedger_Round measures one round of 100 fresh ids (prepare and
// synced commit on the real disk) on a ledger that already holds `held` ids
// over 1000 tenants: how the write path slows as the data grows.
func BenchmarkLedger_Round(b *testing.B) {
	for _, held := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			l, err := ledger.Open(vfs.Default, b.TempDir(), ledger.Options{ID: "c1", Incarnation: "i1"})
			require.NoError(b, err)
			defer l.Close()
			_, err = l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl"})
			require.NoError(b, err)
			seq := uint64(0)
			round := func(its []wire.Item) {
				seq++
				_, err := l.Prepare(wire.PrepareRequest{Round: rid(seq), Stable: seq - 1, Items: its})
				require.NoError(b, err)
				require.NoError(b, l.Commit(wire.DecisionRequest{Round: rid(seq), Stable: seq - 1}))
			}
			const load = 10_000
			for n := 0; n < held; n += load {
				its := make([]wire.Item, load)
				for i := range its {
					its[i] = wire.Item{Tenant: fmt.Sprintf("t%d", (n+i)%1000), ID: fmt.Sprintf("held-%d", n+i)}
				}
				round(its)
			}
			its := make([]wire.Item, 100)
			cpu := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range its {
					its[j] = wire.Item{Tenant: fmt.Sprintf("t%d", j%1000), ID: fmt.Sprintf("new-%d-%d", i, j)}
				}
				round(its)
			}
			b.ReportMetric(float64(b.N*len(its))/b.Elapsed().Seconds(), "items/s")
			// CPU, not time, is what a counter sharing a host spends: a
			// round's time is mostly the wait for the disk.
			b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N*len(its)), "cpu-ns/item")
		})
	}
}

// cpuTime is the CPU (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLedger_Load measures what a counter spends on b.N rounds of
// 1000 random new ids over 100 tenants (prepare and synced commit on the
// real disk), the shape of `make bench`'s writes: run it with
// -benchtime 2000x for 2 M ids. The CPU figure counts the engine's
// flushes and compactions, which run beside the rounds.
func BenchmarkLedger_Load(b *testing.B) {
	l, err := ledger.Open(vfs.Default, b.TempDir(), ledger.Options{ID: "c1", Incarnation: "i1"})
	require.NoError(b, err)
	defer l.Close()
	_, err = l.Join(wire.JoinRequest{Epoch: epoch, ClusterID: "cl"})
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	its := make([]wire.Item, 1000)
	cpu := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range its {
			its[j] = wire.Item{Tenant: fmt.Sprintf("bench-%d", rng.IntN(100)), ID: fmt.Sprintf("c%d-%x", rng.IntN(64), rng.Uint64())}
		}
		seq := uint64(i + 1)
		_, err := l.Prepare(wire.PrepareRequest{Round: rid(seq), Stable: seq - 1, Items: its})
		require.NoError(b, err)
		require.NoError(b, l.Commit(wire.DecisionRequest{Round: rid(seq), Stable: seq - 1}))
	}
	b.ReportMetric(float64(b.N*len(its))/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N*len(its)), "cpu-ns/item")
}
