package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Attack-mode limits: small enough that concurrent bodies full of
// characters JSON may escape merge into rounds near the limit, and that a
// single body can encode to more than a round carries.
const (
	attackMaxBody  = 512 << 10
	attackMaxRound = 1 << 20
)

// attack is one request an attacker sends, and the answers that are fine.
type attack struct {
	name   string
	target string // "public", "internal" (the coordinator's) or "counter"
	method string
	path   string
	body   func() []byte
	// chunked sends the body without a Content-Length.
	chunked bool
	header  http.Header
	// ok judges the answer's status and error code.
	ok func(status int, code string) bool
	// abandon sends the headers and part of the body, then closes the
	// connection: no answer is expected, and nothing may leak.
	abandon bool
}

// clientError: anything a client sends answers 4xx, or 503 overloaded
// when it was shed; never another 5xx.
func clientError(status int, code string) bool {
	return status/100 == 4 || (status == http.StatusServiceUnavailable && code == wire.CodeOverloaded)
}

// accepted: a valid write is applied or shed.
func accepted(status int, code string) bool {
	return status == http.StatusOK || (status == http.StatusServiceUnavailable && code == wire.CodeOverloaded)
}

func is(want int, wantCode string) func(int, string) bool {
	return func(status int, code string) bool { return status == want && (wantCode == "" || code == wantCode) }
}

func fixed(s string) func() []byte { return func() []byte { return []byte(s) } }

// itemsBody builds a POST /items body of n items.
func itemsBody(n int, tenant, id func(i int) string) func() []byte {
	return func() []byte {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%q,"tenant":%q}`, id(i), tenant(i))
		}
		b.WriteByte(']')
		return b.Bytes()
	}
}

// status builds a forged registration.
func status(id, incarnation string, epoch uint64) func() []byte {
	return fixed(fmt.Sprintf(`{"status":{"id":%q,"incarnation":%q,"mode":"ready","cluster_id":"forged","epoch":%d,`+
		`"last":{"epoch":%d,"seq":99},"last_committed":true,"committed":{"epoch":%d,"seq":99},"stable":99,`+
		`"view":[%q],"view_round":{"epoch":%d,"seq":99}}}`, id, incarnation, epoch, epoch, epoch, id, epoch))
}

// attacks is the catalogue: malformed, oversized and odd requests to every
// public route, and every internal route without the token or with a wrong
// one, with forged bodies. counterURL is a real counter's URL, as an
// attacker who learnt it would use it.
func attacks(counterURL string) []attack {
	const maxU64 = "18446744073709551615"
	html := strings.Repeat("<&>", 300)
	lineSep := strings.Repeat("\u2028", 340) // 1020 bytes, 2040 once encoded
	public := []attack{
		{name: "not JSON", method: "POST", path: "/items", body: fixed("hello"), ok: is(400, wire.CodeInvalid)},
		{name: "object", method: "POST", path: "/items", body: fixed(`{"id":"a","tenant":"t"}`), ok: is(400, wire.CodeInvalid)},
		{name: "numbers", method: "POST", path: "/items", body: func() []byte { return []byte("[" + strings.Repeat("1,", 200<<10) + "1]") }, ok: is(400, wire.CodeInvalid)},
		{name: "deep nesting", method: "POST", path: "/items", body: func() []byte { return []byte(strings.Repeat("[", 100000)) }, ok: is(400, wire.CodeInvalid)},
		{name: "empty tenant", method: "POST", path: "/items", body: fixed(`[{"id":"a","tenant":""}]`), ok: is(400, wire.CodeInvalid)},
		{name: "long id", method: "POST", path: "/items", body: fixed(`[{"id":"` + strings.Repeat("x", 2000) + `","tenant":"t"}]`), ok: is(400, wire.CodeInvalid)},
		{name: "invalid UTF-8", method: "POST", path: "/items", body: fixed("[{\"id\":\"\xff\xfe\",\"tenant\":\"t\"}]"), ok: is(400, wire.CodeInvalid)},
		{name: "lone surrogate escape", method: "POST", path: "/items", body: fixed(`[{"id":"\udc00","tenant":"abuse"}]`), ok: accepted},
		{name: "duplicate field", method: "POST", path: "/items", body: fixed(`[{"id":"a","tenant":"t","tenant":"u"}]`), ok: is(400, wire.CodeInvalid)},
		{name: "null item", method: "POST", path: "/items", body: fixed(`[null]`), ok: is(400, wire.CodeInvalid)},
		{name: "too many items", method: "POST", path: "/items", body: itemsBody(10001, func(int) string { return "abuse" }, func(i int) string { return fmt.Sprint(i) }), ok: is(413, wire.CodeTooManyItems)},
		{name: "body over the limit", method: "POST", path: "/items", body: func() []byte { return bytes.Repeat([]byte(" "), attackMaxBody+1) }, ok: is(413, wire.CodeTooLarge)},
		{name: "chunked body over the limit", method: "POST", path: "/items", chunked: true, body: func() []byte { return bytes.Repeat([]byte(" "), attackMaxBody+1) }, ok: is(413, wire.CodeTooLarge)},
		{name: "escaped HTML near the limit", method: "POST", path: "/items",
			body: itemsBody(attackMaxBody*9/10/(len(html)+80), func(i int) string { return "abuse" + html[:i%7] }, func(i int) string { return html + fmt.Sprint(rand.Uint64()) }), ok: accepted},
		{name: "a batch no round can carry", method: "POST", path: "/items",
			body: itemsBody(attackMaxBody*95/100/(len(lineSep)+40), func(int) string { return "abuse" }, func(i int) string { return lineSep[:1017] + fmt.Sprint(i%1000) }), ok: is(413, wire.CodeTooLarge)},
		{name: "empty tenant read", method: "GET", path: "/items//count", ok: is(400, wire.CodeInvalid)},
		{name: "bad escape read", method: "GET", path: "/items/%zz/count", ok: is(400, "")}, // Go's server answers it, in plain text
		{name: "invalid UTF-8 read", method: "GET", path: "/items/%ff%fe/count", ok: is(400, wire.CodeInvalid)},
		{name: "long tenant read", method: "GET", path: "/items/" + strings.Repeat("a", 1025) + "/count", ok: is(400, wire.CodeInvalid)},
		{name: "dot-dot tenant read", method: "GET", path: "/items/..%2F..%2Finternal/count", ok: is(200, "")},
		{name: "huge path", method: "GET", path: "/items/" + strings.Repeat("a", 64<<10) + "/count", ok: clientError},
		{name: "huge header", method: "GET", path: "/items/acme/count", header: http.Header{"X-Pad": {strings.Repeat("a", 64<<10)}}, ok: clientError},
		{name: "wrong method", method: "DELETE", path: "/items", ok: is(405, wire.CodeMethod)},
		{name: "abandoned upload", method: "POST", path: "/items", abandon: true,
			body: itemsBody(2000, func(int) string { return "abuse" }, func(i int) string { return fmt.Sprint(i) })},
		{name: "register on the public port", method: "POST", path: "/internal/register", body: status(counterURL, "forged", 1), ok: is(404, wire.CodeNotFound)},
		{name: "internal read on the public port", method: "GET", path: "/internal/count?tenant=acme&epoch=" + maxU64 + "&fence=0", ok: is(404, wire.CodeNotFound)},
		{name: "internal list on the public port", method: "GET", path: "/internal/counters", ok: is(404, wire.CodeNotFound)},
	}
	for i := range public {
		public[i].target = "public"
	}
	var internal []attack
	unauthorized := is(401, wire.CodeUnauthorized)
	for _, header := range []http.Header{nil, {"Authorization": {"Bearer wrong-token-0123456789abcdef0123456789"}}, {"Authorization": {"Basic YWRtaW46YWRtaW4="}}} {
		internal = append(internal,
			attack{name: "wipe a counter's registration", target: "internal", method: "POST", path: "/internal/register", body: status(counterURL, "made-up-incarnation", 1), header: header, ok: unauthorized},
			attack{name: "register a fake counter", target: "internal", method: "POST", path: "/internal/register", body: status("http://127.0.0.1:1", "fake", 1), header: header, ok: unauthorized},
			attack{name: "register epoch 2^64-1", target: "internal", method: "POST", path: "/internal/register", body: status(counterURL, "x", 1<<63), header: header, ok: unauthorized},
			attack{name: "list counters", target: "internal", method: "GET", path: "/internal/counters", header: header, ok: unauthorized},
			attack{name: "fence epoch 2^64-1", target: "counter", method: "GET", path: "/internal/count?tenant=acme&epoch=" + maxU64 + "&fence=0", header: header, ok: unauthorized},
			attack{name: "join another cluster", target: "counter", method: "POST", path: "/internal/join", body: fixed(`{"epoch":` + maxU64 + `,"cluster_id":"evil","last":{"round":{"epoch":1,"seq":1}},"committed":{"epoch":1,"seq":1}}`), header: header, ok: unauthorized},
			attack{name: "dump a snapshot", target: "counter", method: "GET", path: "/internal/snapshot?since=0&upto=0", header: header, ok: unauthorized},
			attack{name: "install forged rows", target: "counter", method: "POST", path: "/internal/install?join=0", body: fixed(`{"since":0,"upto":0}` + "\n" + `{"end":true,"count":0}` + "\n"), header: header, ok: unauthorized},
			attack{name: "prepare a forged round", target: "counter", method: "POST", path: "/internal/prepare", body: fixed(`{"round":{"epoch":` + maxU64 + `,"seq":1},"view":[],"items":[{"id":"x","tenant":"acme"}]}`), header: header, ok: unauthorized},
			attack{name: "commit a forged round", target: "counter", method: "POST", path: "/internal/commit", body: fixed(`{"round":{"epoch":` + maxU64 + `,"seq":1}}`), header: header, ok: unauthorized},
			attack{name: "abort a forged round", target: "counter", method: "POST", path: "/internal/abort", body: fixed(`{"round":{"epoch":` + maxU64 + `,"seq":1}}`), header: header, ok: unauthorized},
			attack{name: "read a counter's status", target: "counter", method: "GET", path: "/internal/status", header: header, ok: unauthorized},
			attack{name: "read a counter's ids", target: "counter", method: "GET", path: "/internal/ids?tenant=tenant-0", header: header, ok: unauthorized},
			attack{name: "counter health", target: "counter", method: "GET", path: "/health", header: header, ok: unauthorized},
		)
	}
	return append(public, internal...)
}

// attacker sends the catalogue, in random order, until its context ends or
// it has sent maxRequests, and records every answer an attack must not get.
type attacker struct {
	c      *clustertest.Cluster
	rng    *rand.Rand
	client *http.Client
	sent   atomic.Int64

	mu         sync.Mutex
	violations []Violation
}

func newAttacker(c *clustertest.Cluster, seed uint64) *attacker {
	return &attacker{c: c, rng: rand.New(rand.NewPCG(seed, 7)), client: &http.Client{Timeout: 10 * time.Second}}
}

func (a *attacker) run(ctx context.Context, maxRequests int) {
	catalogue := attacks(a.c.Counters[0].URL)
	for range maxRequests {
		if ctx.Err() != nil {
			return
		}
		at := catalogue[a.rng.IntN(len(catalogue))]
		a.send(ctx, at)
	}
}

func (a *attacker) send(ctx context.Context, at attack) {
	if at.abandon {
		a.sent.Add(1)
		if err := abandonUpload(ctx, strings.TrimPrefix(a.c.Coordinator.URL, "http://"), at.path, at.body()); err != nil {
			a.violate(at, err.Error())
		}
		return
	}
	var base string
	switch at.target {
	case "public":
		base = a.c.Coordinator.URL
	case "internal":
		base = a.c.Coordinator.InternalURL
	default:
		base = a.c.Counters[a.rng.IntN(len(a.c.Counters))].URL
	}
	var body io.Reader
	if at.body != nil {
		data := at.body()
		body = bytes.NewReader(data)
		if at.chunked {
			body = io.MultiReader(bytes.NewReader(data)) // hides the length: sent chunked
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, at.method, base, body)
	if err != nil {
		a.violate(at, fmt.Sprintf("build request: %v", err))
		return
	}
	req.URL.Opaque = at.path // sent as is, bad escapes included
	for k, v := range at.header {
		req.Header[k] = v
	}
	a.sent.Add(1)
	resp, err := a.client.Do(req)
	if err != nil {
		a.violate(at, fmt.Sprintf("no answer: %v", err))
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Code string }
	_ = json.Unmarshal(data, &e)
	if !at.ok(resp.StatusCode, e.Code) {
		a.violate(at, fmt.Sprintf("answered %d %s: %.200s", resp.StatusCode, e.Code, data))
	}
	if at.target == "public" && bytes.Contains(data, []byte("127.0.0.1")) {
		a.violate(at, fmt.Sprintf("the public answer names an address: %.200s", data))
	}
}

// abandonUpload announces body, sends half of it and hangs up.
func abandonUpload(ctx context.Context, addr, path string, body []byte) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, addr, len(body))
	if err == nil {
		_, err = conn.Write(body[:len(body)/2])
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (a *attacker) violate(at attack, detail string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.violations = append(a.violations, Violation{Check: "abuse", Tenant: "*", Detail: fmt.Sprintf("%s %s %s (%s): %s", at.target, at.method, at.name, trim(at.path), detail)})
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// memberEvents counts, from the coordinator's log, the membership events
// no attack may cause: a counter marked dead or removed.
type memberEvents struct {
	slog.Handler
	n *atomic.Int64
}

func (m memberEvents) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "marked dead") || r.Message == "counter removed" {
		m.n.Add(1)
	}
	if !m.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return m.Handler.Handle(ctx, r)
}

func (m memberEvents) Enabled(context.Context, slog.Level) bool { return true }

func (m memberEvents) WithAttrs(as []slog.Attr) slog.Handler {
	return memberEvents{Handler: m.Handler.WithAttrs(as), n: m.n}
}

func (m memberEvents) WithGroup(name string) slog.Handler {
	return memberEvents{Handler: m.Handler.WithGroup(name), n: m.n}
}
