package wire

import "math"

// decodeItemsFast decodes the shape almost every client sends: an array of
// objects with exactly the fields "id" and "tenant" (in either order),
// whose strings have no escape, separated by optional whitespace. It
// reports false for anything else, and DecodeItems then decodes the body
// strictly, which accepts what JSON allows and names the problem of a bad
// body. The body has been checked to be valid UTF-8. A fuzz test checks
// that whatever this accepts, the strict decoder accepts as the same items.
//
// encoding/json's streaming decoder finds the end of each value by an
// error it allocates and formats; for small requests that was most of the
// decoding cost.
func decodeItemsFast(body []byte, maxItems int) ([]Item, bool) {
	// The fields are found first and copied out only once the whole body
	// is known to take this path: a body that falls back to the strict
	// decoder late costs the positions of its fields, not their copies.
	type span struct{ id, idEnd, tenant, tenantEnd int32 } // offsets in body
	if len(body) > math.MaxInt32 {
		return nil, false
	}
	var spans []span
	p := fastParser{b: body}
	p.space()
	if !p.byte('[') {
		return nil, false
	}
	p.space()
	if !p.byte(']') {
		for {
			if len(spans) == maxItems {
				return nil, false // the strict decoder says how many are allowed
			}
			id, tenant, ok := p.item()
			if !ok {
				return nil, false
			}
			spans = append(spans, span{int32(id[0]), int32(id[1]), int32(tenant[0]), int32(tenant[1])})
			p.space()
			if p.byte(']') {
				break
			}
			if !p.byte(',') {
				return nil, false
			}
			p.space()
		}
	}
	p.space()
	if p.i != len(p.b) {
		return nil, false
	}
	items := make([]Item, len(spans))
	for i, sp := range spans {
		items[i] = Item{ID: string(body[sp.id:sp.idEnd]), Tenant: string(body[sp.tenant:sp.tenantEnd])}
	}
	return items, true
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// item reads {"id":"…","tenant":"…"} or {"tenant":"…","id":"…"} and
// returns where the two values start and end in the body.
func (p *fastParser) item() (id, tenant [2]int, ok bool) {
	var none [2]int
	if !p.byte('{') {
		return none, none, false
	}
	for field := 0; field < 2; field++ {
		p.space()
		if field == 1 {
			if !p.byte(',') {
				return none, none, false
			}
			p.space()
		}
		name, ok := p.str()
		if !ok {
			return none, none, false
		}
		p.space()
		if !p.byte(':') {
			return none, none, false
		}
		p.space()
		start := p.i + 1
		value, ok := p.str()
		if !ok || len(value) == 0 || len(value) > MaxFieldBytes {
			return none, none, false
		}
		at := [2]int{start, start + len(value)}
		switch {
		case string(name) == "id" && id == none:
			id = at
		case string(name) == "tenant" && tenant == none:
			tenant = at
		default:
			return none, none, false
		}
	}
	p.space()
	return id, tenant, p.byte('}')
}

// str reads a string without escapes or control characters and returns
// its bytes (a view of the body).
func (p *fastParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}
