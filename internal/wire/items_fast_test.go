package wire

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeItemsFast: whatever the fast path accepts, the strict decoder
// accepts as the same items; so the fast path changes no answer.
func FuzzDecodeItemsFast(f *testing.F) {
	for _, s := range []string{
		`[{"id":"a","tenant":"t"}]`,
		` [ { "tenant" : "t" , "id" : "a" } , {"id":"b","tenant":"t"} ] `,
		"[\n\t{\"id\":\"é\",\"tenant\":\"t\"}\r\n]",
		`[]`, `[ ]`, `[{"id":"a","tenant":"t"},]`, `[{"id":"a","tenant":"t"}] x`,
		`[{"id":"a\"b","tenant":"t"}]`, `[{"id":"","tenant":"t"}]`, `[{"id":"a","id":"b"}]`,
		`[{"id":"a","tenant":"t","x":1}]`, `[{"id":"a"}]`, `[{"id":1,"tenant":"t"}]`,
		`[{"id":"a","tenant":"t"}{"id":"b","tenant":"t"}]`, `[{"id":"a",,"tenant":"t"}]`,
		"[{\"id\":\"a\x01\",\"tenant\":\"t\"}]", `[{"i\u0064":"a","tenant":"t"}]`,
		`[{"id":"` + strings.Repeat("x", MaxFieldBytes) + `","tenant":"t"}]`,
		`[{"id":"` + strings.Repeat("x", MaxFieldBytes+1) + `","tenant":"t"}]`,
		`[{"id":"a","tenant":"` + strings.Repeat("é", MaxFieldBytes/2) + `x"}]`,
		`[{"id":"a","tenant":"t"},{"id":"b","tenant":"t"},{"id":"c","tenant":"t"}]`,
		`[{"id":"a","tenant":"t"},{"id":"b","tenant":"t"},{"id":"c","tenant":"t"},{"id":"d","tenant":"t"}]`,
		"\u00a0[]", "\u00a0[{\"id\":\"a\",\"tenant\":\"t\"}]",
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, body []byte, maxItems int) {
		if !utf8.Valid(body) || maxItems < 0 || maxItems > 1000 {
			return
		}
		fast, ok := decodeItemsFast(body, maxItems)
		if !ok {
			return
		}
		strict, err := decodeItemsStrict(body, maxItems)
		if err != nil {
			t.Fatalf("the fast path accepted %q, the strict decoder says %v", body, err)
		}
		if len(fast) != len(strict) {
			t.Fatalf("%q: fast %d items, strict %d", body, len(fast), len(strict))
		}
		for i := range fast {
			if fast[i] != strict[i] {
				t.Fatalf("%q: item %d fast %+v, strict %+v", body, i, fast[i], strict[i])
			}
		}
	})
}

// TestDecodeItemsFast_TakesTheCommonShape: what clients send goes the fast
// way; anything else (escapes, other fields, too many items) goes to the
// strict decoder, which names the problem.
func TestDecodeItemsFast_TakesTheCommonShape(t *testing.T) {
	for _, s := range []string{
		`[{"id":"item1","tenant":"acme"}]`,
		`[{"tenant":"acme corp/eu","id":"x"}, {"id":"y","tenant":"t"}]`,
		`[]`,
	} {
		_, ok := decodeItemsFast([]byte(s), 10)
		assert.True(t, ok, s)
	}
	for _, s := range []string{
		`[{"id":"a\u0062","tenant":"t"}]`,
		`[{"id":"a","tenant":"t","extra":"x"}]`,
		`[{"id":"` + strings.Repeat("x", MaxFieldBytes+1) + `","tenant":"t"}]`,
		`[{"id":"a","tenant":"t"},{"id":"b","tenant":"t"}]`, // over maxItems 1
	} {
		_, ok := decodeItemsFast([]byte(s), 1)
		assert.False(t, ok, s)
	}
	items, err := DecodeItems([]byte(`[{"id":"a","tenant":"t"},{"id":"b","tenant":"t"}]`), 1)
	require.ErrorIs(t, err, ErrTooManyItems)
	assert.Nil(t, items)
	_, err = DecodeItems([]byte("\u00a0[]"), 1)
	require.Error(t, err, "a no-break space is not JSON whitespace")
	items, err = DecodeItems([]byte(`[{"id":"a\u0062","tenant":"t"}]`), 1)
	require.NoError(t, err)
	assert.Equal(t, []Item{{ID: "ab", Tenant: "t"}}, items)
}

// FuzzDecodePrepareFast: whatever the fast path of DecodePrepare accepts,
// the strict decoder accepts as the same request.
func FuzzDecodePrepareFast(f *testing.F) {
	enc := func(items []Item, prev *Decision, view ...string) []byte {
		return EncodePrepare(PrepareRequest{Round: RoundID{Epoch: 7, Seq: 3, TxID: "tx"}, Stable: 2, Prev: prev, View: view},
			[]Batch{EncodeBatch(items)})
	}
	f.Add(enc([]Item{{ID: "a", Tenant: "t"}, {ID: "b<&>", Tenant: "t u"}}, &Decision{Round: RoundID{Epoch: 7, Seq: 2}, Commit: true}, "c1", "c2"))
	f.Add(enc(nil, nil))
	f.Add(enc([]Item{{ID: "\u2028", Tenant: "é"}}, nil, "c1"))
	f.Add([]byte(`{"round":{"epoch":1,"seq":1},"stable":0,"view":[],"items":[],"items":[{"id":"a","tenant":"t"}]}`))
	f.Add([]byte(`{"round":{"epoch":1,"seq":1},"items":[{"id":"a","tenant":"t"}],"stable":5,"view":[]}`))
	f.Add([]byte(`{"view":["a,\"items\":["],"round":{"epoch":1,"seq":1},"items":[{"id":"a","tenant":"t"}]}`))
	f.Add([]byte("{\"round\":{\"epoch\":1,\"seq\":1},\"items\":[{\"id\":\"\xff\",\"tenant\":\"t\"}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodePrepareFast(data)
		if !ok {
			return
		}
		var strict PrepareRequest
		if err := decodeStrict(data, &strict); err != nil {
			t.Fatalf("the fast path accepted %q, the strict decoder says %v", data, err)
		}
		if fast.Round != strict.Round || fast.Stable != strict.Stable || len(fast.View) != len(strict.View) ||
			len(fast.Items) != len(strict.Items) || (fast.Prev == nil) != (strict.Prev == nil) ||
			(fast.Prev != nil && *fast.Prev != *strict.Prev) {
			t.Fatalf("%q: fast %+v, strict %+v", data, fast, strict)
		}
		for i := range fast.View {
			if fast.View[i] != strict.View[i] {
				t.Fatalf("%q: view %d differs", data, i)
			}
		}
		for i := range fast.Items {
			if fast.Items[i] != strict.Items[i] {
				t.Fatalf("%q: item %d fast %+v, strict %+v", data, i, fast.Items[i], strict.Items[i])
			}
		}
	})
}

// TestDecodePrepare_TakesWhatEncodePrepareWrites: a prepare as the
// coordinator writes it goes the fast way and decodes to what was encoded.
func TestDecodePrepare_TakesWhatEncodePrepareWrites(t *testing.T) {
	items := []Item{{ID: "a", Tenant: "t"}, {ID: "b", Tenant: "u"}}
	prev := &Decision{Round: RoundID{Epoch: 7, Seq: 2, TxID: "p"}, Commit: true}
	data := EncodePrepare(PrepareRequest{Round: RoundID{Epoch: 7, Seq: 3, TxID: "tx"}, Stable: 2, Prev: prev, View: []string{"c1", "c2"}},
		[]Batch{EncodeBatch(items[:1]), EncodeBatch(items[1:])})
	fast, ok := decodePrepareFast(data)
	require.True(t, ok, "%s", data)
	req, err := DecodePrepare(data)
	require.NoError(t, err)
	assert.Equal(t, fast, req)
	assert.Equal(t, items, req.Items)
	assert.Equal(t, *prev, *req.Prev)
	assert.Equal(t, []string{"c1", "c2"}, req.View)
}

// TestDecodeStrict_RefusesAnythingAfterTheValue: bytes after the value are
// refused also when they are no JSON token (found by FuzzDecodePrepareFast).
func TestDecodeStrict_RefusesAnythingAfterTheValue(t *testing.T) {
	for _, s := range []string{`{},x`, `{}}`, `{} ,`, `{} {}`, `{} 1`} {
		var v struct{}
		assert.Error(t, decodeStrict([]byte(s), &v), s)
	}
	var v struct{}
	assert.NoError(t, decodeStrict([]byte("{} \n"), &v))
}
