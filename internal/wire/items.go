package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxFieldBytes bounds the length of an item id and of a tenant, so a tenant
// always fits in a URL path and one item cannot take a whole request.
const MaxFieldBytes = 1024

// DecodeItems parses the body of POST /items strictly: a JSON array of
// objects with exactly the string fields "id" and "tenant", both non-empty.
// Errors name the problem and the index of the bad item, for the client.
func DecodeItems(body []byte) ([]Item, error) {
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] != '[' && json.Valid(t) {
		return nil, fmt.Errorf("body must be a JSON array of items, got %s", jsonKind(t))
	}
	var raw []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, describeTopLevel(body, err)
	}
	if dec.More() {
		return nil, errors.New("body must hold exactly one JSON array")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("body must hold exactly one JSON array")
	}
	items := make([]Item, 0, len(raw))
	for i, r := range raw {
		it, err := decodeItem(r)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		items = append(items, it)
	}
	return items, nil
}

func describeTopLevel(body []byte, err error) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errors.New("body must be a JSON array of items, got an empty body")
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Errorf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: unexpected end of body")
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

func decodeItem(r json.RawMessage) (Item, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r, &fields); err != nil || fields == nil {
		return Item{}, fmt.Errorf("must be an object with string fields \"id\" and \"tenant\", got %s", jsonKind(r))
	}
	for name := range fields {
		if name != "id" && name != "tenant" {
			return Item{}, fmt.Errorf("unknown field %q", name)
		}
	}
	id, err := stringField(fields, "id")
	if err != nil {
		return Item{}, err
	}
	tenant, err := stringField(fields, "tenant")
	if err != nil {
		return Item{}, err
	}
	return Item{ID: id, Tenant: tenant}, nil
}

func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	r, ok := fields[name]
	if !ok {
		return "", fmt.Errorf("%s is missing", name)
	}
	var s string
	if t := bytes.TrimSpace(r); len(t) == 0 || t[0] != '"' || json.Unmarshal(t, &s) != nil {
		return "", fmt.Errorf("%s must be a string, got %s", name, jsonKind(r))
	}
	switch {
	case s == "":
		return "", fmt.Errorf("%s must not be empty", name)
	case len(s) > MaxFieldBytes:
		return "", fmt.Errorf("%s is longer than %d bytes", name, MaxFieldBytes)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("%s must be valid UTF-8", name)
	}
	return s, nil
}

// jsonKind names the JSON type of a raw value, for error messages.
func jsonKind(r json.RawMessage) string {
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
