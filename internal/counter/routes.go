package counter

import (
	"log/slog"
	"net/http"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// NewServer builds the counter's HTTP handler. A counter serves only the
// internal API, and every route of it, /health included, requires the
// cluster token: the middleware answers 401 before any route is matched.
func NewServer(logger *slog.Logger, svc *Service, metrics *Metrics, cfg Config) http.Handler {
	r := httpserver.NewRouter(logger, metrics.HTTP.Middleware("internal"))
	r.Use(httpserver.RequireToken(cfg.ClusterToken))
	r.Use(refuseOtherCounters(svc.id))
	r.Get("/health", handleHealth())
	// Operators and tests: the counter's own view (`counter localcount`).
	r.Get("/internal/status", handleStatus(svc))
	r.Get("/internal/localcount", handleLocalCount(svc))
	r.Get("/internal/ids", handleIDs(svc))
	// The coordinator: rounds, fenced reads, sync.
	r.Post("/internal/prepare", handlePrepare(logger, svc, cfg.MaxRoundBytes))
	r.Post("/internal/commit", handleCommit(logger, svc))
	r.Post("/internal/abort", handleAbort(logger, svc))
	r.Get("/internal/count", handleCount(svc))
	r.Post("/internal/join", handleJoin(logger, svc))
	r.Get("/internal/snapshot", handleSnapshot(logger, svc, cfg.SyncTimeout))
	r.Post("/internal/install", handleInstall(logger, svc, cfg.SyncTimeout))
	r.Handle("/metrics", metrics.Handler())
	httpserver.MountProfiler(r)
	return r
}

// refuseOtherCounters answers 409 wrong_counter to a call that names
// another counter (wire.CounterIDHeader): the caller has an old address of
// a counter that has moved, and this counter must not take its rounds.
func refuseOtherCounters(id string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if want := r.Header.Get(wire.CounterIDHeader); want != "" && want != id {
				httpserver.WriteError(w, http.StatusConflict, wire.CodeWrongCounter, "this address serves another counter")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
