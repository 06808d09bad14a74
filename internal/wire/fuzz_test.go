package wire_test

import (
	"encoding/json"
	"testing"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Every decoder of a request from outside (the public API) or from another
// node (the internal API) has a fuzz target. `make test` runs each on its
// seed corpus (and testdata/fuzz, where crashers found are kept);
// `make fuzz FUZZTIME=…` explores. Each checks that the decoder never
// panics and that what it accepts is valid and survives a round trip.

func FuzzDecodeItems(f *testing.F) {
	f.Add([]byte(`[{"id":"a","tenant":"t"}]`))
	f.Add([]byte(`[{"tenant":"<&>","id":"\u2028"},{"id":"b","tenant":"t"}]`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`[1,1,1]`))
	f.Add([]byte(`[{"id":"a","id":"b","tenant":"t"}]`))
	f.Add([]byte("[{\"id\":\"\xff\",\"tenant\":\"t\"}]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := wire.DecodeItems(body, 100)
		if err != nil {
			return
		}
		if len(items) > 100 {
			t.Fatalf("accepted %d items, limit 100", len(items))
		}
		for _, it := range items {
			if wire.CheckField("id", it.ID) != nil || wire.CheckField("tenant", it.Tenant) != nil {
				t.Fatalf("accepted an invalid item %+v", it)
			}
		}
		// What the coordinator sends the counters decodes to the same items.
		prep := wire.EncodePrepare(wire.PrepareRequest{Round: wire.RoundID{Epoch: 1, Seq: 1}}, []wire.Batch{wire.EncodeBatch(items)})
		req, err := wire.DecodePrepare(prep)
		if err != nil {
			t.Fatalf("the counters would reject accepted items: %v", err)
		}
		if len(req.Items) != len(items) {
			t.Fatalf("round trip: %d items, want %d", len(req.Items), len(items))
		}
		for i := range items {
			if req.Items[i] != items[i] {
				t.Fatalf("round trip: item %d is %+v, want %+v", i, req.Items[i], items[i])
			}
		}
	})
}

func FuzzParseTenant(f *testing.F) {
	for _, s := range []string{"acme", "acme%20corp%2Feu", "%", "%zz", "%ff", "", "..", "%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		tenant, err := wire.ParseTenant(escaped)
		if err != nil {
			return
		}
		if wire.CheckField("tenant", tenant) != nil {
			t.Fatalf("accepted an invalid tenant %q", tenant)
		}
	})
}

// roundTrip checks that an accepted request encodes and decodes to itself.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode accepted value: %v", err)
	}
	again, err := decode(data)
	if err != nil {
		t.Fatalf("an accepted value does not decode again: %v\n%s", err, data)
	}
	data2, _ := json.Marshal(again)
	if string(data) != string(data2) {
		t.Fatalf("round trip changed the value:\n%s\n%s", data, data2)
	}
}

func FuzzDecodePrepare(f *testing.F) {
	f.Add([]byte(`{"round":{"epoch":1,"seq":1,"tx_id":"t"},"stable":0,"view":["http://c:8080"],"items":[{"id":"a","tenant":"t"}]}`))
	f.Add([]byte(`{"round":{"epoch":1,"seq":2},"stable":1,"prev":{"round":{"epoch":1,"seq":1},"commit":true},"view":[],"items":[]}`))
	f.Add([]byte(`{"round":{"epoch":18446744073709551615,"seq":1},"view":["http://u@c:1/x?y#z"],"items":[{"id":"","tenant":"t"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := wire.DecodePrepare(data)
		if err != nil {
			return
		}
		if req.Round.Seq == 0 || req.Round.Epoch > wire.MaxEpoch || len(req.View) > wire.MaxView {
			t.Fatalf("accepted an invalid prepare %+v", req.Round)
		}
		for _, it := range req.Items {
			if wire.CheckField("id", it.ID) != nil || wire.CheckField("tenant", it.Tenant) != nil {
				t.Fatalf("accepted an invalid item %+v", it)
			}
		}
		roundTrip(t, req, wire.DecodePrepare)
	})
}

func FuzzDecodeDecision(f *testing.F) {
	f.Add([]byte(`{"round":{"epoch":1,"seq":4,"tx_id":"t"},"stable":3}`))
	f.Add([]byte(`{"round":{"epoch":1,"seq":4},"x":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := wire.DecodeDecision(data)
		if err != nil {
			return
		}
		if req.Round.Epoch > wire.MaxEpoch || req.Round.Seq > wire.MaxSeq || req.Stable > wire.MaxSeq {
			t.Fatalf("accepted an out-of-range decision %+v", req)
		}
		roundTrip(t, req, wire.DecodeDecision)
	})
}

func FuzzDecodeJoin(f *testing.F) {
	f.Add([]byte(`{"epoch":1,"cluster_id":"c","sync_id":"s","last":{"round":{"epoch":1,"seq":3},"commit":true},"committed":{"epoch":1,"seq":3},"stable":3}`))
	f.Add([]byte(`{"epoch":1,"cluster_id":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := wire.DecodeJoin(data)
		if err != nil {
			return
		}
		if req.ClusterID == "" || req.Epoch > wire.MaxEpoch {
			t.Fatalf("accepted an invalid join %+v", req)
		}
		roundTrip(t, req, wire.DecodeJoin)
	})
}

func FuzzDecodeRegister(f *testing.F) {
	f.Add([]byte(`{"status":{"id":"http://c:8080","incarnation":"i","mode":"ready","epoch":3,"last":{"epoch":3,"seq":2},"committed":{"epoch":3,"seq":2},"view":["http://c:8080"],"view_round":{"epoch":3,"seq":2}}}`))
	f.Add([]byte(`{"status":{"id":"http://evil.example/x?y","incarnation":"i","mode":"ready","epoch":18446744073709551615}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := wire.DecodeRegister(data)
		if err != nil {
			return
		}
		if wire.CheckCounterURL(req.Status.ID) != nil || req.Status.Incarnation == "" || req.Status.Epoch > wire.MaxEpoch {
			t.Fatalf("accepted an invalid registration %+v", req.Status)
		}
		roundTrip(t, req, wire.DecodeRegister)
	})
}
