package wire

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
	p := fastParser{b: body}
	p.space()
	if !p.byte('[') {
		return nil, false
	}
	items := []Item{}
	p.space()
	if p.byte(']') {
		p.space()
		return items, p.i == len(p.b)
	}
	for {
		if len(items) == maxItems {
			return nil, false // the strict decoder says how many are allowed
		}
		it, ok := p.item()
		if !ok {
			return nil, false
		}
		items = append(items, it)
		p.space()
		if p.byte(']') {
			break
		}
		if !p.byte(',') {
			return nil, false
		}
		p.space()
	}
	p.space()
	return items, p.i == len(p.b)
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

// item reads {"id":"…","tenant":"…"} or {"tenant":"…","id":"…"}.
func (p *fastParser) item() (Item, bool) {
	var it Item
	if !p.byte('{') {
		return it, false
	}
	for field := 0; field < 2; field++ {
		p.space()
		if field == 1 && (!p.byte(',') || !p.spaced()) {
			return it, false
		}
		name, ok := p.str()
		if !ok {
			return it, false
		}
		p.space()
		if !p.byte(':') {
			return it, false
		}
		p.space()
		value, ok := p.str()
		if !ok || len(value) == 0 || len(value) > MaxFieldBytes {
			return it, false
		}
		switch {
		case string(name) == "id" && it.ID == "":
			it.ID = string(value)
		case string(name) == "tenant" && it.Tenant == "":
			it.Tenant = string(value)
		default:
			return it, false
		}
	}
	p.space()
	return it, p.byte('}')
}

// spaced skips whitespace and reports true, to chain after a byte.
func (p *fastParser) spaced() bool {
	p.space()
	return true
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
