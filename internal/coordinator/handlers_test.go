package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

type noAdds struct{}

func (noAdds) AddItems(context.Context, wire.Batch) error { return errors.New("must not be called") }
func (noAdds) MaxBatchBytes() int                         { return 1 << 20 }

// brokenBody sends a little, then fails as a cut or timed-out connection does.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `[{"id":"a",`), nil
	}
	return 0, errors.New("read tcp 10.1.2.3:8080->10.9.8.7:51710: i/o timeout")
}

// TestCreateItems_ABodyThatStopsTellsNoAddress (from a review): a body cut
// short was answered 400 with the read error, which names the
// coordinator's own address. It is 408 timeout with a fixed message.
func TestCreateItems_ABodyThatStopsTellsNoAddress(t *testing.T) {
	cfg := Config{MaxBodyBytes: 1 << 20, MaxItemsPerRequest: 10, RequestTimeout: time.Second}
	h := handleCreateItems(slog.New(slog.DiscardHandler), noAdds{}, httpserver.NewBudget(1<<20), cfg)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/items", &brokenBody{}))
	assert.Equal(t, http.StatusRequestTimeout, rec.Code)
	assert.Contains(t, rec.Body.String(), wire.CodeTimeout)
	assert.NotContains(t, rec.Body.String(), "10.", "no address")
	assert.False(t, strings.Contains(rec.Body.String(), "tcp"))
}

// TestWriteCount_IsWhatWriteJSONWrites: the reads' own writer answers the
// same bytes and headers as the generic one, for any count.
func TestWriteCount_IsWhatWriteJSONWrites(t *testing.T) {
	for _, n := range []int64{0, 1, 42, 1 << 40, math.MaxInt64, -1} {
		want := httptest.NewRecorder()
		httpserver.WriteJSON(want, http.StatusOK, wire.CountResponse{Count: n})
		got := httptest.NewRecorder()
		writeCount(got, n)
		assert.Equal(t, want.Code, got.Code)
		assert.Equal(t, want.Header(), got.Header())
		assert.Equal(t, want.Body.String(), got.Body.String(), "count %d", n)
	}
}
