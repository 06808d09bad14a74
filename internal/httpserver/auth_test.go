package httpserver_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

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

	rec = httptest.NewRecorder()
	h2 := httpserver.LimitInFlight(1)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	h2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	h2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusNoContent, rec.Code, "slots are given back")
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
