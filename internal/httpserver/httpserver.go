// Package httpserver is the inbound plumbing both services share: reading
// size-limited JSON, writing JSON and errors in the one shape of the API,
// the router with its middleware, and serving with graceful shutdown.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// ErrTooLarge reports a request body over the limit.
var ErrTooLarge = errors.New("request body too large")

// ErrBodyRead reports a body that could not be read: the client stopped
// sending, too slowly or at all. Its cause names addresses: log it, do not
// answer it.
var ErrBodyRead = errors.New("request body not received in full")

// ReadBody reads the whole request body, up to limit bytes.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: limit is %d bytes", ErrTooLarge, limit)
		}
		return nil, fmt.Errorf("%w: %w", ErrBodyRead, err)
	}
	return data, nil
}

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}

// WriteError writes the API's one error shape.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, wire.Error{Message: message, Code: code})
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request id the middleware assigned, if any.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// NewRouter returns a chi router with the shared middleware (request id,
// escaped-path routing, request log, then outer, then panic recovery) and
// JSON answers for unknown routes and wrong methods. outer sees every
// answer, the 500 of a recovered panic included (HTTPMetrics.Middleware).
func NewRouter(logger *slog.Logger, outer ...func(http.Handler) http.Handler) chi.Router {
	r := chi.NewRouter()
	r.Use(requestID, escapedRouting, logRequests(logger))
	r.Use(outer...)
	r.Use(recoverPanics(logger))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, wire.CodeNotFound, "no route for "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusMethodNotAllowed, wire.CodeMethod, "method "+r.Method+" not allowed on "+r.URL.Path)
	})
	return r
}

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if id == "" || len(id) > 128 {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// escapedRouting makes chi match on the escaped path, so "%2F" inside a
// path parameter stays in the parameter instead of splitting the path.
func escapedRouting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			rctx.RoutePath = r.URL.EscapedPath()
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func logRequests(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(rec, r)
			// Debug only: handlers log the causes of failures once, at Warn.
			logger.Debug("request", "method", r.Method, "path", r.URL.Path,
				"status", rec.status, "duration", time.Since(start), "request_id", RequestID(r.Context()))
		})
	}
}

func recoverPanics(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					logger.Error("handler panicked", "panic", v, "path", r.URL.Path, "request_id", RequestID(r.Context()))
					WriteError(w, http.StatusInternalServerError, wire.CodeInternal, "internal error")
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Budget is an allowance of bytes shared by concurrent requests, taken
// without waiting: a request that does not fit is shed, not queued.
type Budget struct {
	mu   sync.Mutex
	free int64
}

// NewBudget returns a budget of n bytes.
func NewBudget(n int64) *Budget { return &Budget{free: n} }

// TryTake takes n bytes if they are free.
func (b *Budget) TryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.free {
		return false
	}
	b.free -= n
	return true
}

// ErrNoBudget reports a body whose bytes the shared budget cannot hold.
var ErrNoBudget = errors.New("too many request bodies in flight; retry shortly")

// budgetStep is how many bytes of a body are taken from a budget at once.
const budgetStep = 64 << 10

// ReadBodyWithin reads the whole body, up to limit bytes, taking its bytes
// from b as they arrive: a slow or stalled upload holds only what it sent,
// and a body holds at most limit bytes of the budget. It returns the bytes
// taken, which the caller gives back once it no longer holds the body,
// also on error. A body the budget cannot hold is ErrNoBudget.
func ReadBodyWithin(w http.ResponseWriter, r *http.Request, limit int64, b *Budget) (data []byte, taken int64, err error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	// grow gives data n more bytes of room, taken from the budget.
	grow := func(n int64) bool {
		if !b.TryTake(n) {
			return false
		}
		taken += n
		bigger := make([]byte, len(data), int64(cap(data))+n)
		copy(bigger, data)
		data = bigger
		return true
	}
	// The first buffer is budgetStep bytes, or the announced length when
	// that is smaller: a small body allocates what it needs, not 64 KiB
	// (which, for small writes, was three quarters of the coordinator's
	// allocations). Past it, the buffer doubles up to limit, and only when
	// a read shows that more bytes come.
	first := min(int64(budgetStep), limit)
	if r.ContentLength >= 0 && r.ContentLength < first {
		first = r.ContentLength
	}
	data = []byte{}
	if first > 0 && !grow(first) {
		return nil, taken, ErrNoBudget
	}
	var probe [1]byte
	for {
		buf := data[len(data):cap(data)]
		full := len(buf) == 0
		if full {
			buf = probe[:] // is there more than the buffer holds?
		}
		n, err := body.Read(buf)
		if n > 0 && full {
			if int64(cap(data)) >= limit {
				return nil, taken, fmt.Errorf("%w: limit is %d bytes", ErrTooLarge, limit)
			}
			if !grow(min(int64(max(cap(data), budgetStep)), limit-int64(cap(data)))) {
				return nil, taken, ErrNoBudget
			}
			data = append(data, probe[0])
		} else {
			data = data[:len(data)+n]
		}
		switch {
		case err == io.EOF:
			return data, taken, nil
		case err != nil:
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, taken, fmt.Errorf("%w: limit is %d bytes", ErrTooLarge, limit)
			}
			return nil, taken, fmt.Errorf("%w: %w", ErrBodyRead, err)
		}
	}
}

// Give returns n bytes taken before.
func (b *Budget) Give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
}

// Timeouts of a server, and the bound of its requests' headers.
type Timeouts struct {
	// MaxHeaderBytes bounds a request's headers (Go's server answers a
	// larger one 431 itself, in plain text).
	MaxHeaderBytes int
	ReadHeader     time.Duration
	Read           time.Duration
	Write          time.Duration
	Idle           time.Duration
	Shutdown       time.Duration
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it stops
// accepting, waits up to t.Shutdown for requests in flight, and returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, t Timeouts, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.Shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}
