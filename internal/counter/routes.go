package counter

import (
	"log/slog"
	"net/http"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

// NewServer builds the counter's HTTP handler.
func NewServer(logger *slog.Logger, svc *Service, maxBodyBytes int64) http.Handler {
	r := httpserver.NewRouter(logger)
	// Public-facing, for operators and tests: the counter's own view.
	r.Get("/health", handleHealth(svc))
	r.Get("/items/{tenantID}/count", handleLocalCount(svc))
	// Internal: called by the coordinator only.
	r.Post("/internal/prepare", handlePrepare(logger, svc, maxBodyBytes))
	r.Post("/internal/commit", handleCommit(logger, svc))
	r.Post("/internal/abort", handleAbort(logger, svc))
	r.Get("/internal/count/{tenantID}", handleCount(svc))
	r.Get("/internal/ids/{tenantID}", handleIDs(svc))
	r.Post("/internal/join", handleJoin(logger, svc))
	r.Get("/internal/snapshot", handleSnapshot(logger, svc))
	r.Post("/internal/install", handleInstall(logger, svc))
	return r
}
