package httpserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

const token = "0123456789abcdef0123456789abcdef-token"

func TestRequireToken_OnlyTheExactBearerTokenPasses(t *testing.T) {
	t.Parallel()
	reached := 0
	h := httpserver.RequireToken(token)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		name, header string
		want         int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong", "Bearer " + strings.Repeat("x", len(token)), http.StatusUnauthorized},
		{"prefix", "Bearer " + token[:len(token)-1], http.StatusUnauthorized},
		{"longer", "Bearer " + token + "x", http.StatusUnauthorized},
		{"no scheme", token, http.StatusUnauthorized},
		{"basic", "Basic " + token, http.StatusUnauthorized},
		{"right", "Bearer " + token, http.StatusNoContent},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, "/internal/register", strings.NewReader("{}"))
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, tt.want, rec.Code, tt.name)
		if tt.want == http.StatusUnauthorized {
			assert.Contains(t, rec.Body.String(), wire.CodeUnauthorized, tt.name)
			assert.NotEmpty(t, rec.Header().Get("WWW-Authenticate"), tt.name)
		}
	}
	assert.Equal(t, 1, reached, "only the right token reaches the handler")
}

func TestRequireToken_EmptyTokenIsInsecureMode(t *testing.T) {
	t.Parallel()
	h := httpserver.RequireToken("")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusNoContent, rec.Code)
}

func TestCheckClusterToken(t *testing.T) {
	t.Parallel()
	assert.NoError(t, httpserver.CheckClusterToken(token, false))
	assert.NoError(t, httpserver.CheckClusterToken("", true), "insecure, as asked")
	assert.ErrorContains(t, httpserver.CheckClusterToken("", false), "CLUSTER_INSECURE")
	assert.ErrorContains(t, httpserver.CheckClusterToken("short", false), "32 to 256")
	assert.ErrorContains(t, httpserver.CheckClusterToken(token+" with space", false), "only letters")
	assert.ErrorContains(t, httpserver.CheckClusterToken(token+"\n", false), "only letters")
}

func TestLimitInFlight_ShedsPastTheLimitWithRetryAfter(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	h := httpserver.LimitInFlight(2)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-release
	}))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) })
	}
	started.Wait()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), wire.CodeOverloaded)
	close(release)
	wg.Wait()

	h2 := httpserver.LimitInFlight(1)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for i := range 3 {
		rec = httptest.NewRecorder()
		h2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		assert.Equal(t, http.StatusNoContent, rec.Code, "request %d: slots are given back", i)
	}
}

// trickle is a body that sends n bytes and then blocks until release.
type trickle struct {
	n       int
	release chan struct{}
}

func (tr *trickle) Read(p []byte) (int, error) {
	if tr.n == 0 {
		<-tr.release
		return 0, io.EOF
	}
	k := min(len(p), tr.n)
	tr.n -= k
	return k, nil
}

func TestReadBodyWithin_TakesTheBudgetAsBytesArrive(t *testing.T) {
	t.Parallel()
	b := httpserver.NewBudget(1 << 20)
	// A client announces 900 KiB and sends 100 KiB: it holds what it sent.
	tr := &trickle{n: 100 << 10, release: make(chan struct{})}
	req := httptest.NewRequest(http.MethodPost, "/items", tr)
	req.ContentLength = 900 << 10
	type result struct {
		data  []byte
		taken int64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		data, taken, err := httpserver.ReadBodyWithin(httptest.NewRecorder(), req, 4<<20, b)
		done <- result{data, taken, err}
	}()
	const more = 1<<20 - 128<<10 + 1 // more than is left once it holds 128 KiB
	require.Eventually(t, func() bool {
		if b.TryTake(more) {
			b.Give(more)
			return false
		}
		return true
	}, 5*time.Second, time.Millisecond, "the stalled upload holds about what it sent")
	assert.True(t, b.TryTake(1<<20-256<<10), "and no more")
	b.Give(1<<20 - 256<<10)
	close(tr.release)
	r := <-done
	require.NoError(t, r.err)
	assert.Len(t, r.data, 100<<10)
	assert.Equal(t, int64(cap(r.data)), r.taken, "taken is what the buffer holds")
	b.Give(r.taken)
	assert.True(t, b.TryTake(1<<20), "all given back")
}

func TestReadBodyWithin_ShedsABodyTheBudgetCannotHold(t *testing.T) {
	t.Parallel()
	b := httpserver.NewBudget(256 << 10)
	req := httptest.NewRequest(http.MethodPost, "/items", strings.NewReader(strings.Repeat("x", 300<<10)))
	_, taken, err := httpserver.ReadBodyWithin(httptest.NewRecorder(), req, 4<<20, b)
	require.ErrorIs(t, err, httpserver.ErrNoBudget)
	b.Give(taken)
	assert.True(t, b.TryTake(256<<10), "what it took is given back")

	req = httptest.NewRequest(http.MethodPost, "/items", strings.NewReader(strings.Repeat("x", 300<<10)))
	_, taken, err = httpserver.ReadBodyWithin(httptest.NewRecorder(), req, 200<<10, httpserver.NewBudget(1<<20))
	require.ErrorIs(t, err, httpserver.ErrTooLarge)
	assert.LessOrEqual(t, taken, int64(256<<10))
}

func TestBudget(t *testing.T) {
	t.Parallel()
	b := httpserver.NewBudget(10)
	require.True(t, b.TryTake(6))
	assert.False(t, b.TryTake(5), "over the budget")
	require.True(t, b.TryTake(4))
	b.Give(6)
	assert.True(t, b.TryTake(6))
}

// TestReadBodyWithin_ABodyAtTheLimitFitsABudgetOfTheLimit (from a review):
// the buffer grew past the limit by doubling, so a body of exactly
// MAX_BODY_BYTES needed twice that of the budget and could be refused for
// ever when MAX_INFLIGHT_BYTES equalled MAX_BODY_BYTES.
func TestReadBodyWithin_ABodyAtTheLimitFitsABudgetOfTheLimit(t *testing.T) {
	t.Parallel()
	for _, limit := range []int64{4 << 20, 5_000_000, 100} {
		b := httpserver.NewBudget(limit)
		req := httptest.NewRequest(http.MethodPost, "/items", strings.NewReader(strings.Repeat("x", int(limit))))
		data, taken, err := httpserver.ReadBodyWithin(httptest.NewRecorder(), req, limit, b)
		require.NoError(t, err, "limit %d", limit)
		assert.Len(t, data, int(limit))
		assert.Equal(t, limit, taken)

		req = httptest.NewRequest(http.MethodPost, "/items", strings.NewReader(strings.Repeat("x", int(limit)+1)))
		_, taken, err = httpserver.ReadBodyWithin(httptest.NewRecorder(), req, limit, httpserver.NewBudget(limit))
		require.ErrorIs(t, err, httpserver.ErrTooLarge, "limit %d", limit)
		assert.LessOrEqual(t, taken, limit)
	}
}

// TestReadBodyWithin_ASmallBodyTakesItsLength: an announced small body gets
// a buffer of its length, not of budgetStep (64 KiB each was three quarters
// of the coordinator's allocations under small writes); a body of unknown
// length still reads whole, and an empty one takes nothing.
func TestReadBodyWithin_ASmallBodyTakesItsLength(t *testing.T) {
	t.Parallel()
	body := `[{"id":"item1","tenant":"acme"}]`
	b := httpserver.NewBudget(1 << 20)
	req := httptest.NewRequest(http.MethodPost, "/items", strings.NewReader(body))
	data, taken, err := httpserver.ReadBodyWithin(httptest.NewRecorder(), req, 4<<20, b)
	require.NoError(t, err)
	assert.Equal(t, body, string(data))
	assert.Equal(t, int64(len(body)), taken, "it takes the announced length")
	assert.Equal(t, len(body), cap(data))

	req = httptest.NewRequest(http.MethodPost, "/items", io.NopCloser(strings.NewReader(body)))
	req.ContentLength = -1 // chunked: unknown
	data, _, err = httpserver.ReadBodyWithin(httptest.NewRecorder(), req, 4<<20, b)
	require.NoError(t, err)
	assert.Equal(t, body, string(data))

	req = httptest.NewRequest(http.MethodPost, "/items", http.NoBody)
	data, taken, err = httpserver.ReadBodyWithin(httptest.NewRecorder(), req, 4<<20, b)
	require.NoError(t, err)
	assert.Empty(t, data)
	assert.Zero(t, taken)
}
