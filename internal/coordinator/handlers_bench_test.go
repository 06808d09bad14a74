package coordinator

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// cachedCounts answers every read as the count cache does when it holds
// the tenant.
type cachedCounts struct{}

func (cachedCounts) Count(context.Context, string) (int64, error) { return 123456, nil }
func (cachedCounts) CachedCount(string) (int64, bool)             { return 123456, true }

// BenchmarkGetCount_Cached is the handler of GET /items/{t}/count when the
// count cache answers (nearly every read): what it costs beyond the HTTP
// server and the router.
func BenchmarkGetCount_Cached(b *testing.B) {
	h := handleGetCount(slog.New(slog.DiscardHandler), cachedCounts{}, 10*time.Second)
	// The server's request context is cancelable (it ends with the
	// connection): a timeout derived from it registers with it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/items/acme/count", nil)
	req.SetPathValue("tenantID", "acme")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
