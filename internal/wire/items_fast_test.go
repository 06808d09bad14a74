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
	items, err = DecodeItems([]byte(`[{"id":"a\u0062","tenant":"t"}]`), 1)
	require.NoError(t, err)
	assert.Equal(t, []Item{{ID: "ab", Tenant: "t"}}, items)
}
