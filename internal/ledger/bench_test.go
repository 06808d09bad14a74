package ledger_test

import (
	"fmt"
	"testing"

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
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range its {
					its[j] = wire.Item{Tenant: fmt.Sprintf("t%d", j%1000), ID: fmt.Sprintf("new-%d-%d", i, j)}
				}
				round(its)
			}
			b.ReportMetric(float64(b.N*len(its))/b.Elapsed().Seconds(), "items/s")
		})
	}
}
