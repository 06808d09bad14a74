package wire_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

func TestDecodeItems(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []wire.Item
		wantErr string
	}{
		{"items", `[{"id":"a","tenant":"t"},{"tenant":"u","id":"b"}]`, []wire.Item{{ID: "a", Tenant: "t"}, {ID: "b", Tenant: "u"}}, ""},
		{"empty array", `[]`, []wire.Item{}, ""},
		{"whitespace around", " \n[]\n ", []wire.Item{}, ""},
		{"empty body", ``, nil, "got an empty body"},
		{"object", `{"id":"a"}`, nil, "body must be a JSON array of items, got an object"},
		{"string", `"a"`, nil, "got a string"},
		{"null", `null`, nil, "got null"},
		{"truncated", `[{"id":"a"`, nil, "unexpected end of body"},
		{"syntax", `[{"id":"a",}]`, nil, "malformed JSON at byte"},
		{"two values", `[][]`, nil, "exactly one JSON array"},
		{"item null", `[null]`, nil, "item 0: must be an object"},
		{"item number", `[{"id":"a","tenant":"t"},3]`, nil, "item 1: must be an object with string fields \"id\" and \"tenant\", got a number"},
		{"id number", `[{"id":1,"tenant":"t"}]`, nil, "item 0: id must be a string, got a number"},
		{"tenant null", `[{"id":"a","tenant":null}]`, nil, "item 0: tenant must be a string, got null"},
		{"missing id", `[{"tenant":"t"}]`, nil, "item 0: id is missing"},
		{"empty tenant", `[{"id":"a","tenant":""}]`, nil, "item 0: tenant must not be empty"},
		{"extra field", `[{"id":"a","tenant":"t","x":1}]`, nil, `item 0: unknown field "x"`},
		{"id too long", `[{"id":"` + strings.Repeat("x", wire.MaxFieldBytes+1) + `","tenant":"t"}]`, nil, "item 0: id is longer than 1024 bytes"},
		{"field twice", `[{"id":"a","tenant":"t","id":"b"}]`, nil, `item 0: field "id" appears twice`},
		{"field case", `[{"ID":"a","tenant":"t"}]`, nil, `item 0: unknown field "ID"`},
		{"escaped field name", `[{"\u0069d":"a","tenant":"t"}]`, []wire.Item{{ID: "a", Tenant: "t"}}, ""},
		{"nested value", `[{"id":{"x":1},"tenant":"t"}]`, nil, "item 0: id must be a string, got an object"},
		{"array value", `[{"id":"a","tenant":[]}]`, nil, "item 0: tenant must be a string, got an array"},
		{"invalid UTF-8", "[{\"id\":\"\xff\",\"tenant\":\"t\"}]", nil, "body must be valid UTF-8"},
		{"html and quotes", `[{"id":"<a href=\"x\">&amp;</a>","tenant":"<>&"}]`, []wire.Item{{ID: `<a href="x">&amp;</a>`, Tenant: "<>&"}}, ""},
		{"unicode escapes", `[{"id":"\u00e9\ud83d\ude00","tenant":"t"}]`, []wire.Item{{ID: "é😀", Tenant: "t"}}, ""},
		{"trailing comma", `[{"id":"a","tenant":"t"},]`, nil, "malformed JSON"},
		{"garbage after", `[] x`, nil, "exactly one JSON array"},
		{"too many items", `[{"id":"a","tenant":"t"},{"id":"b","tenant":"t"},{"id":"c","tenant":"t"},{"id":"d","tenant":"t"}]`, nil, "too many items: at most 3 per request"},
		{"not JSON", `hello`, nil, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.DecodeItems([]byte(tt.body), 3)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestDecodeItems_RejectsEarlyWithoutBuildingTheBody is the regression
// test of a 4 MiB body of numbers that cost ~335 MB to reject: it stops at
// the first bad item and allocates next to nothing.
func TestDecodeItems_RejectsEarlyWithoutBuildingTheBody(t *testing.T) {
	body := []byte("[" + strings.Repeat("1,", 2<<20) + "1]")
	allocated := allocatedBytes(func() {
		_, err := wire.DecodeItems(body, 10000)
		require.ErrorContains(t, err, "item 0: must be an object")
	})
	assert.Less(t, allocated, uint64(1<<20), "rejecting a 4 MiB body allocated %d bytes", allocated)
}

// TestDecodeItems_AcceptedBodyCostsAboutItsSize is the regression test of a
// valid 4 MiB body that cost ~180 MB (40x) to decode.
func TestDecodeItems_AcceptedBodyCostsAboutItsSize(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 4000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%0900d","tenant":"%0100d"}`, i, i%7)
	}
	b.WriteString("]")
	body := []byte(b.String())
	var items []wire.Item
	allocated := allocatedBytes(func() {
		var err error
		items, err = wire.DecodeItems(body, 10000)
		require.NoError(t, err)
	})
	require.Len(t, items, 4000)
	assert.Less(t, allocated, uint64(3*len(body)), "decoding %d bytes allocated %d", len(body), allocated)
}

func allocatedBytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestEncodeBatch_RoundTripsWithoutHTMLEscaping(t *testing.T) {
	items := []wire.Item{{ID: "<&>", Tenant: "a\"b"}, {ID: "\u2028", Tenant: "é"}}
	b := wire.EncodeBatch(items)
	assert.Equal(t, 2, b.Items)
	assert.NotContains(t, string(b.JSON), `\u003c`, "< is not escaped")
	body := wire.EncodePrepare(wire.PrepareRequest{Round: wire.RoundID{Epoch: 1, Seq: 1}, View: []string{"http://c:8080"}},
		[]wire.Batch{b, {}, wire.EncodeBatch(items[:1])})
	req, err := wire.DecodePrepare(body)
	require.NoError(t, err, "%s", body)
	assert.Equal(t, append(items, items[0]), req.Items)
	assert.Equal(t, []string{"http://c:8080"}, req.View)
}

// TestPrepareOverhead_BoundsTheLargestEnvelope: the bytes of a prepare other
// than its items stay within PrepareOverhead for the largest round ids and
// a view of the longest counter ids, so rounds cut by it never pass MAX_ROUND_BYTES.
func TestPrepareOverhead_BoundsTheLargestEnvelope(t *testing.T) {
	big := wire.RoundID{Epoch: wire.MaxEpoch, Seq: wire.MaxSeq, TxID: strings.Repeat("t", wire.MaxTokenBytes)}
	for _, views := range []int{1, 3, 64, wire.MaxView} {
		view := make([]string, views)
		for i := range view {
			u := fmt.Sprintf("%d.", i)
			view[i] = u + strings.Repeat("<", wire.MaxTokenBytes-len(u)) // JSON writes < as \u003c at worst
		}
		items := wire.EncodeBatch([]wire.Item{{ID: "a", Tenant: "t"}})
		body := wire.EncodePrepare(wire.PrepareRequest{Round: big, Stable: wire.MaxSeq, Prev: &wire.Decision{Round: big, Commit: true}, View: view},
			[]wire.Batch{items})
		_, err := wire.DecodePrepare(body)
		require.NoError(t, err)
		envelope := len(body) - len(items.JSON)
		assert.LessOrEqual(t, envelope, wire.PrepareOverhead(views), "%d views", views)
		assert.Greater(t, envelope, wire.PrepareOverhead(views)*3/4, "%d views: the bound is not loose", views)
	}
}

func TestParseTenant(t *testing.T) {
	tests := []struct{ escaped, want, wantErr string }{
		{"acme", "acme", ""},
		{"acme%20corp%2Feu", "acme corp/eu", ""},
		{"%E7%A7%9F", "租", ""},
		{"", "", "tenant must not be empty"},
		{"%zz", "", "bad escape"},
		{"%ff", "", "valid UTF-8"},
		{strings.Repeat("a", wire.MaxFieldBytes+1), "", "longer than"},
	}
	for _, tt := range tests {
		got, err := wire.ParseTenant(tt.escaped)
		if tt.wantErr != "" {
			assert.ErrorContains(t, err, tt.wantErr, tt.escaped)
			continue
		}
		require.NoError(t, err, tt.escaped)
		assert.Equal(t, tt.want, got)
	}
}
