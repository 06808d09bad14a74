package coordinator

import (
	"log/slog"
	"net/http"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

// NewServer builds the coordinator's HTTP handler.
func NewServer(logger *slog.Logger, svc *Service, cfg Config) http.Handler {
	r := httpserver.NewRouter(logger)
	// Public API.
	r.Post("/items", handleCreateItems(logger, svc, cfg.MaxBodyBytes, cfg.RequestTimeout))
	r.Get("/items/{tenantID}/count", handleGetCount(logger, svc, cfg.RequestTimeout))
	r.Get("/counters", handleListCounters(svc))
	r.Get("/health", handleHealth(svc))
	// Internal: called by counters only.
	r.Post("/internal/register", handleRegister(logger, svc))
	return r
}
