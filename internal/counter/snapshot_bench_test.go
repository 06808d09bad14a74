package counter

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// BenchmarkSnapshotLines measures the two ends of a snapshot transfer per
// row: writing a row line (the source) and decoding it (the installer).
func BenchmarkSnapshotLines(b *testing.B) {
	row := wire.SnapshotEntry{Tenant: "bench-1a2b3c4d-1234", ID: "12-34567-8", Seq: 123456}
	b.Run("write", func(b *testing.B) {
		var buf bytes.Buffer
		sw, _ := wire.NewSnapshotWriter(&buf, 0, 1)
		b.ReportAllocs()
		for b.Loop() {
			if buf.Len() > 1<<20 {
				buf.Reset()
			}
			_ = sw.Row(row)
		}
	})
	b.Run("decode", func(b *testing.B) {
		line := []byte(fmt.Sprintf(`{"t":%q,"i":%q,"s":%d}`, row.Tenant, row.ID, row.Seq))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeSnapshotLine(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}
