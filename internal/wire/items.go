package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"unicode/utf8"
)

// MaxFieldBytes bounds the length of an item id and of a tenant, so a tenant
// always fits in a URL path and one item cannot take a whole request.
const MaxFieldBytes = 1024

// ErrTooManyItems reports a request with more items than allowed.
var ErrTooManyItems = errors.New("too many items")

// DecodeItems parses the body of POST /items strictly: a JSON array of at
// most maxItems objects with exactly the string fields "id" and "tenant",
// both valid (see CheckField). Errors name the problem and the index of the
// bad item, for the client.
//
// It reads the body token by token and stops at the first error, so a
// rejected body costs no more than the part of it read, and an accepted one
// about the size of its ids and tenants: no intermediate tree of values.
func DecodeItems(body []byte, maxItems int) ([]Item, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("body must be valid UTF-8")
	}
	if items, ok := decodeItemsFast(body, maxItems); ok {
		return items, nil
	}
	return decodeItemsStrict(body, maxItems)
}

// decodeItemsStrict is DecodeItems for a body of valid UTF-8 in any shape
// JSON allows.
func decodeItemsStrict(body []byte, maxItems int) ([]Item, error) {
	trimmed := bytes.Trim(body, " \t\r\n") // JSON's whitespace only
	if len(trimmed) == 0 {
		return nil, errors.New("body must be a JSON array of items, got an empty body")
	}
	if trimmed[0] != '[' {
		if json.Valid(trimmed) {
			return nil, fmt.Errorf("body must be a JSON array of items, got %s", jsonKind(trimmed))
		}
		return nil, errors.New("malformed JSON: body must be a JSON array of items")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil { // the '['
		return nil, syntaxError(err)
	}
	var items []Item
	for dec.More() {
		if len(items) == maxItems {
			return nil, fmt.Errorf("%w: at most %d per request", ErrTooManyItems, maxItems)
		}
		it, err := decodeItem(dec)
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, syntaxError(err)
			}
			return nil, fmt.Errorf("item %d: %w", len(items), err)
		}
		items = append(items, it)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("body must hold exactly one JSON array")
	}
	if items == nil {
		items = []Item{}
	}
	return items, nil
}

func syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("malformed JSON: unexpected end of body")
	default:
		return fmt.Errorf("malformed JSON: %v", err)
	}
}

// decodeItem reads one array element, which must be {"id":"…","tenant":"…"}.
func decodeItem(dec *json.Decoder) (Item, error) {
	tok, err := dec.Token()
	if err != nil {
		return Item{}, err
	}
	if tok != json.Delim('{') {
		return Item{}, fmt.Errorf("must be an object with string fields \"id\" and \"tenant\", got %s", tokenKind(tok))
	}
	var it Item
	var seenID, seenTenant bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Item{}, err
		}
		name, _ := tok.(string) // object keys are always strings
		var dst *string
		switch {
		case name == "id" && !seenID:
			dst, seenID = &it.ID, true
		case name == "tenant" && !seenTenant:
			dst, seenTenant = &it.Tenant, true
		case name == "id" || name == "tenant":
			return Item{}, fmt.Errorf("field %q appears twice", name)
		default:
			return Item{}, fmt.Errorf("unknown field %q", truncate(name))
		}
		tok, err = dec.Token()
		if err != nil {
			return Item{}, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
			return Item{}, fmt.Errorf("%s must be a string, got %s", name, tokenKind(tok))
		}
		s, ok := tok.(string)
		if !ok {
			return Item{}, fmt.Errorf("%s must be a string, got %s", name, tokenKind(tok))
		}
		if err := CheckField(name, s); err != nil {
			return Item{}, err
		}
		*dst = s
	}
	if _, err := dec.Token(); err != nil { // the '}'
		return Item{}, err
	}
	switch {
	case !seenID:
		return Item{}, errors.New("id is missing")
	case !seenTenant:
		return Item{}, errors.New("tenant is missing")
	}
	return it, nil
}

// CheckField checks an id or a tenant: a non-empty string of valid UTF-8 of
// at most MaxFieldBytes bytes.
func CheckField(name, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s must not be empty", name)
	case len(s) > MaxFieldBytes:
		return fmt.Errorf("%s is longer than %d bytes", name, MaxFieldBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s must be valid UTF-8", name)
	}
	return nil
}

// ParseTenant decodes the escaped tenant of a URL path segment and checks it
// like a posted one, so every tenant that can be read could have been written.
func ParseTenant(escaped string) (string, error) {
	s, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("tenant has a bad escape: %w", err)
	}
	return s, CheckField("tenant", s)
}

// truncate shortens a client's string quoted in an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}

// tokenKind names the JSON type of a token, for error messages.
func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a number"
	}
}

// jsonKind names the JSON type of a raw value, for error messages.
func jsonKind(r []byte) string {
	t := bytes.TrimSpace(r)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// Batch is the items of one request, encoded once, as they travel in a
// prepare: the round's size is known exactly before it is sent.
type Batch struct {
	// Items is the number of items.
	Items int
	// JSON is the items as JSON objects separated by commas, no brackets.
	JSON []byte
}

// EncodeBatch encodes items. It does not escape <, > and &: the encoding is
// at most twice the size of the JSON the items were decoded from (a raw
// U+2028 or U+2029, 3 bytes, becomes a 6-byte escape; control characters
// arrived escaped already), never the six times HTML escaping costs.
func EncodeBatch(items []Item) Batch {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(items); err != nil {
		panic("wire: encode items: " + err.Error()) // strings always encode
	}
	b := buf.Bytes()
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(items) == 0 {
		return Batch{}
	}
	return Batch{Items: len(items), JSON: b[1 : len(b)-1]}
}
