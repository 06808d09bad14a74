package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/distributed-counter/distributed-counter/api"
	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// ItemAdder adds items to the commit order.
type ItemAdder interface {
	AddItems(ctx context.Context, batch wire.Batch) error
	// MaxBatchBytes is the largest encoded batch a round can carry.
	MaxBatchBytes() int
}

// CountReader reads a tenant's count: from the count cache alone when it
// can (CachedCount, no call and no deadline needed), else with Count.
type CountReader interface {
	CachedCount(tenantID string) (int64, bool)
	Count(ctx context.Context, tenantID string) (int64, error)
}

// invalidError marks an error in what the client sent; its message is for the client.
type invalidError struct{ err error }

func (e invalidError) Error() string { return e.err.Error() }
func (e invalidError) Unwrap() error { return e.err }

func invalid(err error) error { return invalidError{err} }

// writeError maps an error to the API's answer, each limit to its code.
// Causes of 5xx answers go to the log with the request id; the client gets
// a message it can act on.
func writeError(logger *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var status int
	var code, msg string
	switch {
	case errors.Is(err, wire.ErrTooManyItems):
		status, code, msg = http.StatusRequestEntityTooLarge, wire.CodeTooManyItems, err.Error()
	case errors.Is(err, httpserver.ErrBodyRead):
		// The cause names addresses: the log has it, the client does not.
		status, code, msg = http.StatusRequestTimeout, wire.CodeTimeout, "the request body did not arrive in full; nothing was applied"
	case errors.Is(err, httpserver.ErrTooLarge), errors.Is(err, twopc.ErrTooLarge):
		status, code, msg = http.StatusRequestEntityTooLarge, wire.CodeTooLarge, err.Error()
	case errors.As(err, new(invalidError)):
		status, code, msg = http.StatusBadRequest, wire.CodeInvalid, err.Error()
	case errors.Is(err, ErrBadRegistration):
		status, code, msg = http.StatusBadRequest, wire.CodeInvalid, err.Error()
	case errors.Is(err, httpserver.ErrNoBudget), errors.Is(err, twopc.ErrOverloaded):
		httpserver.WriteOverloaded(w, err.Error())
		return
	case errors.Is(err, ErrTooManyCounters):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeTooManyCounters, err.Error()
	case errors.Is(err, ErrReadTimeout):
		status, code = http.StatusGatewayTimeout, wire.CodeTimeout
		msg = "the read did not finish in time; nothing changed, retry"
	case errors.Is(err, twopc.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		status, code = http.StatusGatewayTimeout, wire.CodeOutcomeUnknown
		msg = "the write may or may not have been applied; retrying the same items is safe"
	case errors.Is(err, ErrRecovering):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error()
	case errors.Is(err, twopc.ErrAborted):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "a counter refused the write; nothing was applied, retry"
	case errors.Is(err, twopc.ErrNotRecorded):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "the coordinator could not record the write; nothing was applied, retry"
	case errors.Is(err, twopc.ErrStopped):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "the coordinator is shutting down; nothing was applied, retry"
	case errors.Is(err, twopc.ErrUnavailable), errors.Is(err, ErrNoCounter):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "no counter available; nothing was applied, retry"
	default:
		status, code, msg = http.StatusInternalServerError, wire.CodeInternal, "internal error"
	}
	if (status >= 500 || status == http.StatusRequestTimeout) && r.Context().Err() == nil {
		logger.Warn("request failed", "path", r.URL.Path, "status", status, "err", err,
			"request_id", httpserver.RequestID(r.Context()))
	}
	httpserver.WriteError(w, status, code, msg)
}

// handleCreateItems checks and encodes a batch of items before it reaches
// the committer: nothing a client sends can make a counter refuse a round.
// The body is bounded in bytes and items, and the bodies being read share
// a budget (MAX_INFLIGHT_BYTES), taken as their bytes arrive; a request
// that does not fit is shed at once. The committer bounds the encoded
// batches it holds apart.
func handleCreateItems(logger *slog.Logger, items ItemAdder, budget *httpserver.Budget, cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > cfg.MaxBodyBytes {
			writeError(logger, w, r, fmt.Errorf("%w: limit is %d bytes", httpserver.ErrTooLarge, cfg.MaxBodyBytes))
			return
		}
		body, taken, err := httpserver.ReadBodyWithin(w, r, cfg.MaxBodyBytes, budget)
		release := func() { budget.Give(taken); taken = 0 }
		defer release()
		if err != nil {
			writeError(logger, w, r, err)
			return
		}
		parsed, err := wire.DecodeItems(body, cfg.MaxItemsPerRequest)
		if err != nil {
			if !errors.Is(err, wire.ErrTooManyItems) {
				err = invalid(err)
			}
			writeError(logger, w, r, err)
			return
		}
		batch := wire.EncodeBatch(parsed)
		body, parsed = nil, nil
		release() // from here the committer accounts for the batch
		if max := items.MaxBatchBytes(); len(batch.JSON) > max {
			writeError(logger, w, r, fmt.Errorf("%w: the items encode to %d bytes, a round carries at most %d (MAX_ROUND_BYTES)",
				httpserver.ErrTooLarge, len(batch.JSON), max))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.RequestTimeout)
		defer cancel()
		if err := items.AddItems(ctx, batch); err != nil {
			writeError(logger, w, r, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, wire.MessageResponse{Message: "Success"})
	}
}

func handleGetCount(logger *slog.Logger, counts CountReader, timeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := wire.ParseTenant(r.PathValue("tenantID"))
		if err != nil {
			writeError(logger, w, r, invalid(err))
			return
		}
		if n, ok := counts.CachedCount(tenantID); ok {
			writeCount(w, n)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		n, err := counts.Count(ctx, tenantID)
		if err != nil {
			writeError(logger, w, r, err)
			return
		}
		writeCount(w, n)
	}
}

// writeCount writes wire.CountResponse{Count: n} as WriteJSON does, byte
// for byte, without its encoder: it is the answer of every read.
func writeCount(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Type", "application/json")
	b := make([]byte, 0, 32)
	b = append(b, `{"count":`...)
	b = strconv.AppendInt(b, n, 10)
	_, _ = w.Write(append(b, "}\n"...))
}

// handleListCounters lists the counters; internal adds their URLs and
// last errors, which only the internal API shows.
func handleListCounters(svc *Service, internal bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, svc.Counters(internal))
	}
}

// handleOpenAPI serves the OpenAPI description of the public API.
func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(api.Spec())
	}
}

//go:embed status.html
var statusPage []byte

// statusPolicy lets the status page run its own inline script and style,
// named by their hashes, and fetch status.json; nothing else runs or loads.
var statusPolicy = pagePolicy(statusPage)

// pagePolicy is the Content-Security-Policy of page, whose one <script>
// and one <style> are allowed by their SHA-256 hashes.
func pagePolicy(page []byte) string {
	hash := func(open, end string) string {
		i, j := bytes.Index(page, []byte(open)), bytes.Index(page, []byte(end))
		if i < 0 || j < i {
			panic("status.html has no " + open + " element") // embedded at build time; the tests load it
		}
		sum := sha256.Sum256(page[i+len(open) : j])
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; script-src " + hash("<script>", "</script>") + "; style-src " + hash("<style>", "</style>") +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// handleStatusPage serves the status page, which polls status.json.
func handleStatusPage() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", statusPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(statusPage)
	}
}

// handleStatus serves what the status page shows.
func handleStatus(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		httpserver.WriteJSON(w, http.StatusOK, svc.Status())
	}
}

func handleHealth(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := "ok"
		if svc.isRecovering() {
			status = "recovering"
		}
		httpserver.WriteJSON(w, http.StatusOK, wire.HealthResponse{Status: status})
	}
}

// maxRegisterBytes bounds a registration (a counter's status).
const maxRegisterBytes = 1 << 20

func handleRegister(logger *slog.Logger, svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := httpserver.ReadBody(w, r, maxRegisterBytes)
		if err != nil {
			writeError(logger, w, r, err)
			return
		}
		req, err := wire.DecodeRegister(body)
		if err != nil {
			writeError(logger, w, r, invalid(err))
			return
		}
		resp, err := svc.Register(req.Status)
		if err != nil {
			writeError(logger, w, r, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, resp)
	}
}
