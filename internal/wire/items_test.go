package wire_test

import (
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.DecodeItems([]byte(tt.body))
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

func FuzzDecodeItems(f *testing.F) {
	f.Add([]byte(`[{"id":"a","tenant":"t"}]`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := wire.DecodeItems(body)
		if err != nil {
			return
		}
		for _, it := range items {
			if it.ID == "" || it.Tenant == "" || len(it.ID) > wire.MaxFieldBytes || len(it.Tenant) > wire.MaxFieldBytes {
				t.Fatalf("accepted an invalid item %+v", it)
			}
		}
	})
}
