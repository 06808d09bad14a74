package wire_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Hot paths of a write at the coordinator: decoding a body and encoding its
// batch. Compare runs with benchstat; b.ReportMetric gives the allocation
// per body byte, the figure the README quotes.

func body(items int, idBytes int) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range items {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%0*d","tenant":"tenant-%d"}`, idBytes, i, i%10)
	}
	b.WriteString("]")
	return []byte(b.String())
}

func benchDecode(b *testing.B, data []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := wire.DecodeItems(data, 10000); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeItems_10Small(b *testing.B)    { benchDecode(b, body(10, 8)) }
func BenchmarkDecodeItems_10000Small(b *testing.B) { benchDecode(b, body(10000, 8)) }
func BenchmarkDecodeItems_4000Large(b *testing.B)  { benchDecode(b, body(4000, 1000)) }
func BenchmarkDecodeItems_RejectNumbers(b *testing.B) {
	data := []byte("[" + strings.Repeat("1,", 2<<20) + "1]")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := wire.DecodeItems(data, 10000); err == nil {
			b.Fatal("accepted numbers")
		}
	}
}

func BenchmarkEncodeBatch_4000Large(b *testing.B) {
	items, err := wire.DecodeItems(body(4000, 1000), 10000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		wire.EncodeBatch(items)
	}
}

// BenchmarkDecodePrepare_1000Small: a counter decoding a round of 1,000
// small items, as the coordinator encodes it.
func BenchmarkDecodePrepare_1000Small(b *testing.B) {
	items, err := wire.DecodeItems(body(1000, 8), 10000)
	if err != nil {
		b.Fatal(err)
	}
	prev := &wire.Decision{Round: wire.RoundID{Epoch: 7, Seq: 2, TxID: "p"}, Commit: true}
	data := wire.EncodePrepare(wire.PrepareRequest{Round: wire.RoundID{Epoch: 7, Seq: 3, TxID: "tx"}, Stable: 2, Prev: prev,
		View: []string{"c1", "c2", "c3"}}, []wire.Batch{wire.EncodeBatch(items)})
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := wire.DecodePrepare(data); err != nil {
			b.Fatal(err)
		}
	}
}
