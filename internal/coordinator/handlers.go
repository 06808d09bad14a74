package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// ItemAdder adds items to the commit order.
type ItemAdder interface {
	AddItems(ctx context.Context, items []wire.Item) error
}

// CountReader reads a tenant's count.
type CountReader interface {
	Count(ctx context.Context, tenantID string) (int64, error)
}

// invalidError marks an error in what the client sent; its message is for the client.
type invalidError struct{ err error }

func (e invalidError) Error() string { return e.err.Error() }
func (e invalidError) Unwrap() error { return e.err }

func invalid(err error) error { return invalidError{err} }

// writeError maps an error to the API's answer. Causes of 5xx answers go to
// the log with the request id; the client gets a message it can act on.
func writeError(logger *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var status int
	var code, msg string
	switch {
	case errors.Is(err, httpserver.ErrTooLarge):
		status, code, msg = http.StatusRequestEntityTooLarge, wire.CodeTooLarge, err.Error()
	case errors.As(err, new(invalidError)):
		status, code, msg = http.StatusBadRequest, wire.CodeInvalid, err.Error()
	case errors.Is(err, ErrBadRegistration):
		status, code, msg = http.StatusBadRequest, wire.CodeInvalid, err.Error()
	case errors.Is(err, twopc.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded):
		status, code = http.StatusGatewayTimeout, wire.CodeOutcomeUnknown
		msg = "the write may or may not have been applied; retrying the same items is safe"
	case errors.Is(err, ErrRecovering):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error()
	case errors.Is(err, twopc.ErrAborted):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "a counter refused the write; nothing was applied, retry"
	case errors.Is(err, twopc.ErrUnavailable), errors.Is(err, ErrNoCounter), errors.Is(err, twopc.ErrStopped):
		status, code, msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "no counter available; nothing was applied, retry"
	default:
		status, code, msg = http.StatusInternalServerError, wire.CodeInternal, "internal error"
	}
	if status >= 500 {
		logger.Warn("request failed", "path", r.URL.Path, "status", status, "err", err,
			"request_id", httpserver.RequestID(r.Context()))
	}
	httpserver.WriteError(w, status, code, msg)
}

func handleCreateItems(logger *slog.Logger, items ItemAdder, maxBodyBytes int64, timeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := httpserver.ReadBody(w, r, maxBodyBytes)
		if err != nil {
			writeError(logger, w, r, err)
			return
		}
		parsed, err := wire.DecodeItems(body)
		if err != nil {
			writeError(logger, w, r, invalid(err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := items.AddItems(ctx, parsed); err != nil {
			writeError(logger, w, r, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, wire.MessageResponse{Message: "Success"})
	}
}

func handleGetCount(logger *slog.Logger, counts CountReader, timeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := httpserver.PathValue(r, "tenantID")
		if err != nil {
			writeError(logger, w, r, invalid(err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		n, err := counts.Count(ctx, tenantID)
		if err != nil {
			writeError(logger, w, r, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, wire.CountResponse{Count: n})
	}
}

func handleListCounters(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, svc.Counters())
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
		var req wire.RegisterRequest
		if err := httpserver.ReadJSON(w, r, maxRegisterBytes, &req); err != nil {
			if !errors.Is(err, httpserver.ErrTooLarge) {
				err = invalid(err)
			}
			writeError(logger, w, r, err)
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
