package coordinator

import (
	"log/slog"
	"net/http"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

// publicRoutes builds the handler of the public listener (HTTP_PORT): the
// client API, open to anyone, with at most MAX_INFLIGHT_REQUESTS served at
// once. No internal route is here.
func publicRoutes(logger *slog.Logger, svc *Service, cfg Config) http.Handler {
	r := httpserver.NewRouter(logger, svc.metrics.HTTP.Middleware("public"))
	r.Use(httpserver.LimitInFlight(cfg.MaxInflightRequests))
	budget := httpserver.NewBudget(cfg.MaxInflightBytes)
	r.Post("/items", handleCreateItems(logger, svc, budget, cfg))
	r.Get("/items/{tenantID}/count", handleGetCount(logger, svc, cfg.RequestTimeout))
	r.Get("/counters", handleListCounters(svc, false))
	r.Get("/health", handleHealth(svc))
	r.Get("/openapi.yaml", handleOpenAPI())
	r.Get("/status", handleStatusPage())
	r.Get("/status.json", handleStatus(svc))
	r.Handle("/metrics", svc.metrics.Handler())
	return r
}

// internalRoutes builds the handler of the internal listener
// (INTERNAL_PORT): counters only. Every request must carry the cluster
// token; without it the answer is 401 and nothing runs.
func internalRoutes(logger *slog.Logger, svc *Service, cfg Config) http.Handler {
	r := httpserver.NewRouter(logger, svc.metrics.HTTP.Middleware("internal"))
	r.Use(httpserver.RequireToken(cfg.ClusterToken))
	r.Post("/internal/register", handleRegister(logger, svc))
	r.Get("/internal/counters", handleListCounters(svc, true))
	r.Handle("/metrics", svc.metrics.Handler())
	httpserver.MountProfiler(r)
	return r
}
