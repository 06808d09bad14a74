package counter

import (
	"bytes"
	"encoding/json"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"testing"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// FuzzDecodeSnapshotLine: a line of a snapshot stream never panics the
// decoder, and a row that install would merge (one that passes
// wire.CheckSnapshotEntry) survives a round trip through the encoder the
// source uses.
func FuzzDecodeSnapshotLine(f *testing.F) {
	f.Add([]byte(`{"since":0,"upto":3}`))
	f.Add([]byte(`{"t":"acme","i":"a","s":1}`))
	f.Add([]byte(`{"end":true,"count":2}`))
	f.Add([]byte(`{"t":"","i":"a","s":1,"x":1}`))
	f.Add([]byte(`{"t":"a\"b","i":"\u00e9","s":18446744073709551615}`))
	f.Add([]byte(`{"t":"acme","i":"a","s":01}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := decodeRowFast(data); ok {
			var strict snapshotLine
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&strict); err != nil || strict.SnapshotEntry != fast || strict.End || strict.Upto != 0 {
				t.Fatalf("the fast path took %q as %+v; the strict decoder: %+v, %v", data, fast, strict, err)
			}
		}
		line, err := decodeSnapshotLine(data)
		if err != nil || line.End || wire.CheckSnapshotEntry(line.SnapshotEntry) != nil {
			return
		}
		encoded, err := json.Marshal(line.SnapshotEntry)
		if err != nil {
			t.Fatalf("encode an accepted row: %v", err)
		}
		again, err := decodeSnapshotLine(encoded)
		if err != nil || again.SnapshotEntry != line.SnapshotEntry {
			t.Fatalf("row %+v does not survive a round trip: %+v, %v", line.SnapshotEntry, again.SnapshotEntry, err)
		}
	})
}

// FuzzInstall: any stream into a syncing counter either installs (and the
// counter then holds only valid rows) or is refused, never panics.
func FuzzInstall(f *testing.F) {
	f.Add([]byte("{\"since\":0,\"upto\":3}\n{\"t\":\"acme\",\"i\":\"a\",\"s\":1}\n{\"end\":true,\"count\":1}\n"))
	f.Add([]byte("{\"since\":0,\"upto\":3}\n{\"t\":\"acme\",\"i\":\"a\",\"s\":9}\n{\"end\":true,\"count\":1}\n"))
	f.Add([]byte("{\"since\":0,\"upto\":3}\n{\"end\":true,\"count\":5}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := ledger.Open(vfs.NewMem(), "data", ledger.Options{ID: "c1", Incarnation: "inc"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		svc := NewService(l, "http://c1:8080")
		last := wire.RoundID{Epoch: 1, Seq: 3}
		if _, err := svc.ledger.Join(wire.JoinRequest{Epoch: 1, ClusterID: "cl", SyncID: "s", Last: wire.Decision{Round: last, Commit: true}, Committed: last, Stable: 3}); err != nil {
			t.Fatal(err)
		}
		if _, err := install(svc, "s", 3, bytes.NewReader(body)); err != nil {
			return
		}
		rows, err := svc.ledger.Snapshot(0, 3)
		if err != nil {
			t.Fatalf("a counter that installed its snapshot cannot serve one: %v", err)
		}
		for _, r := range rows {
			if err := wire.CheckSnapshotEntry(r); err != nil || r.Seq == 0 || r.Seq > 3 {
				t.Fatalf("installed an invalid row %+v: %v", r, err)
			}
		}
	})
}
