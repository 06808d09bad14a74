package clustertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// send sends a request to base+path with the given token ("" sends none).
func send(t *testing.T, c *clustertest.Cluster, method, url, token, body string) clustertest.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return clustertest.Response{Status: resp.StatusCode, Body: buf.Bytes()}
}

// forgedStatus is a registration claiming to be a counter that restarted, at url.
func forgedStatus(id, url, incarnation string, epoch uint64) string {
	return fmt.Sprintf(`{"status":{"id":%q,"url":%q,"incarnation":%q,"mode":"idle","epoch":%d}}`, id, url, incarnation, epoch)
}

// TestCluster_NoInternalRouteOnThePublicPort is the regression test of a
// public POST /internal/register: registering every counter with a made-up
// incarnation wiped every count. The public port answers 404 for every
// internal route, and the data stays.
func TestCluster_NoInternalRouteOnThePublicPort(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{})
	mustAdd(t, c, items("acme", "a", "b", "c")...)

	for _, n := range c.Counters {
		resp := send(t, c, "POST", c.Coordinator.URL+"/internal/register", "", forgedStatus(n.ID(), n.URL, "made-up", 1))
		assert.Equal(t, http.StatusNotFound, resp.Status, "%s", resp.Body)
		resp = send(t, c, "POST", c.Coordinator.URL+"/internal/register", c.Token, forgedStatus(n.ID(), n.URL, "made-up", 1))
		assert.Equal(t, http.StatusNotFound, resp.Status, "not even with the token: the route is not there")
	}
	for _, path := range []string{"/internal/counters", "/internal/count?tenant=acme&epoch=1&fence=0", "/internal/status", "/debug/pprof/", "/debug/pprof/heap"} {
		resp := send(t, c, "GET", c.Coordinator.URL+path, c.Token, "")
		assert.Equal(t, http.StatusNotFound, resp.Status, path)
	}

	assert.Equal(t, int64(3), mustCount(t, c, "acme"))
	members, err := c.Members(t.Context())
	require.NoError(t, err)
	for _, m := range members.Counters {
		assert.Equal(t, "live", m.State, m.ID)
	}
}

// TestCluster_InternalAPIRequiresTheToken: on the internal listener a
// registration without the token, or with a wrong one, is 401 and changes
// nothing: no fake counter joins, no real one is made to resync.
func TestCluster_InternalAPIRequiresTheToken(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{})
	mustAdd(t, c, items("acme", "a", "b")...)
	before, err := c.Members(t.Context())
	require.NoError(t, err)

	for _, token := range []string{"", "wrong-token-0123456789abcdef0123456789", c.Token[:len(c.Token)-1]} {
		for _, body := range []string{
			forgedStatus(c.Counters[0].ID(), c.Counters[0].URL, "made-up", 1),
			forgedStatus("fake", "http://127.0.0.1:1", "fake", 1),
			forgedStatus(c.Counters[1].ID(), c.Counters[1].URL, "x", 1<<62),
		} {
			resp := send(t, c, "POST", c.Coordinator.InternalURL+"/internal/register", token, body)
			assert.Equal(t, http.StatusUnauthorized, resp.Status)
			assert.Equal(t, wire.CodeUnauthorized, resp.Error().Code)
		}
		resp := send(t, c, "GET", c.Coordinator.InternalURL+"/internal/counters", token, "")
		assert.Equal(t, http.StatusUnauthorized, resp.Status)
	}

	after, err := c.Members(t.Context())
	require.NoError(t, err)
	require.Len(t, after.Counters, len(before.Counters), "no counter added")
	for i, m := range after.Counters {
		assert.Equal(t, before.Counters[i].Incarnation, m.Incarnation, "%s not resynced", m.ID)
		assert.Equal(t, "live", m.State)
	}
	assert.Equal(t, int64(2), mustCount(t, c, "acme"))
}

// TestCluster_RegistrationsAreCheckedAndCapped: with the token, a
// registration that names no usable counter URL or id is 400, and one past
// MaxCounters is 503 too_many_counters.
func TestCluster_RegistrationsAreCheckedAndCapped(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{Counters: 2, MaxCounters: 2})
	for _, u := range []string{"http://u:p@127.0.0.1:1", "http://127.0.0.1:1/x", "http://127.0.0.1:1?q", "ftp://127.0.0.1:1", "http://127.0.0.1:1#f", ""} {
		resp := send(t, c, "POST", c.Coordinator.InternalURL+"/internal/register", c.Token, forgedStatus("new-one", u, "i", 1))
		assert.Equal(t, http.StatusBadRequest, resp.Status, u)
	}
	for _, id := range []string{"", "has space", strings.Repeat("x", wire.MaxTokenBytes+1), "caf\u00e9"} {
		resp := send(t, c, "POST", c.Coordinator.InternalURL+"/internal/register", c.Token, forgedStatus(id, "http://127.0.0.1:1", "i", 1))
		assert.Equal(t, http.StatusBadRequest, resp.Status, id)
	}
	resp := send(t, c, "POST", c.Coordinator.InternalURL+"/internal/register", c.Token, forgedStatus(c.Counters[0].ID(), c.Counters[0].URL, "i", 1<<63))
	assert.Equal(t, http.StatusBadRequest, resp.Status, "an epoch that would overflow")

	resp = send(t, c, "POST", c.Coordinator.InternalURL+"/internal/register", c.Token, forgedStatus("new-one", "http://127.0.0.1:1", "i", 1))
	assert.Equal(t, http.StatusServiceUnavailable, resp.Status)
	assert.Equal(t, wire.CodeTooManyCounters, resp.Error().Code)
	members, err := c.Members(t.Context())
	require.NoError(t, err)
	assert.Len(t, members.Counters, 2)
}

// TestCluster_PublicCountersShowNoInternalAddress: GET /counters on the
// public port names counters by wire.CounterName, with no URL or error.
func TestCluster_PublicCountersShowNoInternalAddress(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{})
	c.Counters[2].Stop()
	require.Eventually(t, func() bool { return c.State(t.Context(), c.Counters[2]) == "dead" }, waitFor, tick)

	resp, err := c.Do(t.Context(), http.MethodGet, "/counters", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.Status)
	for _, n := range append(c.Counters, c.Coordinator) {
		assert.NotContains(t, string(resp.Body), n.Host(), "no address of %s", n.Name)
	}
	assert.NotContains(t, string(resp.Body), "127.0.0.1")
	var cr wire.CountersResponse
	require.NoError(t, resp.Decode(&cr))
	names := map[string]string{}
	for _, m := range cr.Counters {
		names[m.Name] = m.State
	}
	for _, n := range c.Counters[:2] {
		assert.Equal(t, "live", names[wire.CounterName(n.ID(), c.Token)], n.Name)
	}
	assert.Equal(t, "dead", names[wire.CounterName(c.Counters[2].ID(), c.Token)])
}

// TestCluster_EmptyTenantReadMarksNoCounterDead is the regression test of
// GET /items//count, which made every counter dead: the coordinator checks
// the tenant, and a counter's answer about a request is not its failure.
func TestCluster_EmptyTenantReadMarksNoCounterDead(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{RecoveryTries: 1000})
	mustAdd(t, c, items("acme", "a")...)
	for _, path := range []string{"/items//count", "/items/%ff/count", "/items/" + strings.Repeat("a", wire.MaxFieldBytes+1) + "/count"} {
		resp, err := c.Do(t.Context(), http.MethodGet, path, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadRequest, resp.Status, path)
		assert.Equal(t, wire.CodeInvalid, resp.Error().Code, path)
	}
	assert.Equal(t, len(c.Counters), c.LiveCount(t.Context()), "no counter marked dead")
	assert.Equal(t, int64(1), mustCount(t, c, "acme"))
}

// TestCluster_EscapingBatchesNeverOverflowARound is the regression test of
// bodies full of <, > and &: re-encoded with HTML escaping they grew ~6x,
// concurrent ones merged into a round over the counters' MAX_ROUND_BYTES,
// the 413 was taken for a "no" vote and every counter was marked dead.
// Rounds are cut by their encoded size; a batch that can never fit is 413.
func TestCluster_EscapingBatchesNeverOverflowARound(t *testing.T) {
	t.Parallel()
	const maxRound = 400 << 10
	c := startLive(t, clustertest.Options{MaxBodyBytes: 256 << 10, MaxRoundBytes: maxRound, RecoveryTries: 1000, CounterTimeout: 2 * time.Second})
	html := strings.Repeat("<>&", 300)
	batch := func(prefix string, n int) []wire.Item {
		its := make([]wire.Item, n)
		for i := range its {
			its[i] = wire.Item{ID: fmt.Sprintf("%s-%d-%s", prefix, i, html), Tenant: "t<&>"}
		}
		return its
	}
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Go(func() {
			var body bytes.Buffer
			enc := json.NewEncoder(&body)
			enc.SetEscapeHTML(false) // as a client would send them: 1 byte each
			require.NoError(t, enc.Encode(batch(fmt.Sprint(i), 200)))
			resp, err := c.Do(context.WithoutCancel(t.Context()), http.MethodPost, "/items", body.Bytes()) // ~190 KiB each
			if assert.NoError(t, err) {
				statuses[i] = resp.Status
			}
		})
	}
	wg.Wait()
	for i, s := range statuses {
		assert.Equal(t, http.StatusOK, s, "request %d", i)
	}
	assert.Equal(t, int64(1600), mustCount(t, c, "t<&>"))
	assert.Equal(t, len(c.Counters), c.LiveCount(t.Context()), "no counter marked dead")

	// U+2028 is escaped to 6 bytes even without HTML escaping: a body
	// under MaxBodyBytes whose encoding no round can carry is 413.
	sep := strings.Repeat("\u2028", 335) // 1005 bytes raw, 2010 encoded
	var big []wire.Item
	for i := range 245 {
		big = append(big, wire.Item{ID: fmt.Sprintf("%s%d", sep, i), Tenant: "t"})
	}
	body, err := json.Marshal(big)
	require.NoError(t, err)
	body = bytes.ReplaceAll(body, []byte(`\u2028`), []byte("\u2028")) // send it raw: 3 bytes each
	require.Less(t, len(body), 256<<10)
	resp, err := c.Do(t.Context(), http.MethodPost, "/items", body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.Status, "%s", resp.Body)
	assert.Equal(t, wire.CodeTooLarge, resp.Error().Code)
	assert.Equal(t, len(c.Counters), c.LiveCount(t.Context()))
	assert.Equal(t, int64(0), mustCount(t, c, "t"), "nothing applied")
}

// TestCluster_OverloadIsShedWithRetryAfter: past MaxInflightRequests a
// request is answered 503 overloaded with Retry-After at once, and nothing
// of it is applied.
func TestCluster_OverloadIsShedWithRetryAfter(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{MaxInflightRequests: 1, CounterTimeout: 10 * time.Second})
	release := c.Faults.Add(clustertest.Rule{Path: "/internal/prepare", Fault: clustertest.Hold})
	held := make(chan clustertest.Response, 1)
	go func() {
		// Shed itself when a /health probe below holds the one slot: then
		// it tries again (a bounded number of times) until it holds it.
		var resp clustertest.Response
		for range 1000 {
			var err error
			resp, err = c.Add(context.WithoutCancel(t.Context()), items("acme", "held")...)
			if err != nil || resp.Error().Code != wire.CodeOverloaded {
				break
			}
		}
		held <- resp
	}()
	// The held write takes the one slot: a side-effect-free request shows when.
	require.Eventually(t, func() bool {
		resp, err := c.Do(t.Context(), http.MethodGet, "/health", nil)
		return err == nil && resp.Status == http.StatusServiceUnavailable
	}, waitFor, tick)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.Coordinator.URL+"/items", strings.NewReader(`[{"id":"shed","tenant":"acme"}]`))
	require.NoError(t, err)
	resp, err := c.Client.Do(req)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Equal(t, wire.CodeOverloaded, clustertest.Response{Body: buf.Bytes()}.Error().Code)
	release()
	assert.Equal(t, http.StatusOK, (<-held).Status)
	ids, err := c.IDs(t.Context(), c.Counters[0], "acme")
	require.NoError(t, err)
	assert.Equal(t, []string{"held"}, ids, "the shed request was not applied")
}

// TestCluster_ACounterRejectingAReadStaysLive: an answer about a request is
// not the counter's failure. When counters reject a read as malformed (a
// version mismatch, say), the client gets 500 and every counter stays live;
// when one refuses by the protocol (behind), it is marked dead.
func TestCluster_ACounterRejectingAReadStaysLive(t *testing.T) {
	t.Parallel()
	var deaths atomic.Int64
	c := startLive(t, clustertest.Options{Logger: slog.New(deathCounter{Handler: slog.DiscardHandler, n: &deaths})})
	mustAdd(t, c, items("acme", "a")...)
	before := deaths.Load()
	heal := c.Faults.Add(clustertest.Rule{Path: "/internal/count", Fault: clustertest.Reject})
	for range 5 {
		resp, err := c.Do(t.Context(), http.MethodGet, "/items/acme/count", nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusInternalServerError, resp.Status)
		assert.Equal(t, wire.CodeInternal, resp.Error().Code)
	}
	assert.Equal(t, before, deaths.Load(), "no counter marked dead")
	heal()
	assert.Equal(t, int64(1), mustCount(t, c, "acme"))

	// A refusal, by contrast, takes the counter out. (Each read names a
	// tenant the coordinator has no count of, so a counter answers it.)
	heal = c.Faults.Add(clustertest.Rule{Path: "/internal/count", Fault: clustertest.Refuse, Prob: 0.5})
	defer heal()
	fresh := 0
	require.Eventually(t, func() bool {
		fresh++
		n, err := c.Count(t.Context(), fmt.Sprintf("fresh-%d", fresh))
		return (err != nil || n == 0) && deaths.Load() > before
	}, waitFor, tick, "a counter that refuses a read is marked dead")
}

// TestCluster_LargeValidRoundsMarkNoCounterDead: valid bodies near the
// limits (ids of control characters that encode to 6 bytes each) merge
// into rounds near MAX_ROUND_BYTES. Their calls get time in proportion to
// their size: no counter is marked dead, and every request is applied or
// shed as overloaded. (A quarter of the production sizes, so that the race
// detector's slowdown keeps it within the client's timeout.)
func TestCluster_LargeValidRoundsMarkNoCounterDead(t *testing.T) {
	t.Parallel()
	// The production limits and timeout; under the race detector the
	// timeout grows as much as the work slows down.
	var deaths atomic.Int64
	c := startLive(t, clustertest.Options{MaxBodyBytes: 1 << 20, MaxRoundBytes: 4 << 20, CounterTimeout: slowdown * 2 * time.Second,
		RequestTimeout: slowdown * 10 * time.Second, RecoveryTries: 1000, Logger: slog.New(deathCounter{Handler: slog.DiscardHandler, n: &deaths})})
	ctrl := strings.Repeat("\x01", 1000)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for w := range 3 { // three bodies of 1 MiB merge into rounds of up to 3 MiB
		wg.Go(func() {
			for k := range 1 {
				its := make([]wire.Item, 170)
				for i := range its {
					its[i] = wire.Item{ID: fmt.Sprintf("%d-%d-%d-%s", w, k, i, ctrl), Tenant: "big"}
				}
				body, err := json.Marshal(its) // ~1 MiB: \u0001 is 6 bytes
				require.NoError(t, err)
				resp, err := c.Do(context.WithoutCancel(t.Context()), http.MethodPost, "/items", body)
				if !assert.NoError(t, err) {
					return
				}
				if resp.Status == http.StatusOK {
					ok.Add(1)
					continue
				}
				assert.Equal(t, http.StatusServiceUnavailable, resp.Status, "%s", resp.Body)
				assert.Equal(t, wire.CodeOverloaded, resp.Error().Code, resp.Error().Message)
			}
		})
	}
	wg.Wait()
	assert.Zero(t, deaths.Load(), "no counter marked dead")
	assert.Equal(t, ok.Load()*170, mustCount(t, c, "big"))
}

// deathCounter counts the coordinator's log events of a counter marked dead.
type deathCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (d deathCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "marked dead") {
		d.n.Add(1)
	}
	return nil
}

func (d deathCounter) Enabled(context.Context, slog.Level) bool { return true }
func (d deathCounter) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d deathCounter) WithGroup(string) slog.Handler            { return d }
