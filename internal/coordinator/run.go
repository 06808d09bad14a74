package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/membership"
	"github.com/distributed-counter/distributed-counter/internal/remote"
)

// Run serves the coordinator on ln until ctx ends, then shuts down
// gracefully: the server stops taking requests and finishes those in
// flight (their rounds included) before the background loops stop.
// client makes the calls to counters (tests inject faults through it).
func Run(ctx context.Context, cfg Config, ln net.Listener, client *http.Client, logger *slog.Logger) error {
	state := newStateFile(cfg.DataDir)
	saved, found, err := state.load()
	if err != nil {
		return fmt.Errorf("coordinator state (fix or remove the file): %w", err)
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	counters := remote.NewCounters(client)
	svc := NewService(cfg, counters, state, time.Now, logger)
	logger.Info("coordinator starting", "addr", ln.Addr().String(), "recovery_grace", cfg.RecoveryGrace.String(),
		"data_dir", cfg.DataDir, "saved_state", found, "saved_holders", saved.Holders)

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		pos, err := svc.awaitRecovery(loopCtx, saved, found)
		if err != nil {
			if loopCtx.Err() == nil {
				logger.Error("recovery failed", "err", err)
			}
			return
		}
		svc.committer.Run(loopCtx, pos)
	})
	wg.Go(func() { svc.syncLoop(loopCtx) })
	monitor := &membership.Monitor{
		Registry: svc.registry,
		Prober:   counters,
		Interval: cfg.HealthInterval,
		Timeout:  cfg.CounterTimeout,
		Now:      time.Now,
		Logger:   logger,
		Resync:   svc.resync,
	}
	wg.Go(func() { monitor.Run(loopCtx) })

	err = httpserver.Serve(ctx, ln, NewServer(logger, svc, cfg), httpserver.Timeouts{
		ReadHeader: 5 * time.Second,
		Read:       30 * time.Second,
		Write:      cfg.RequestTimeout + 5*time.Second,
		Idle:       2 * time.Minute,
		Shutdown:   cfg.ShutdownTimeout,
	}, logger)
	stopLoops()
	wg.Wait()
	logger.Info("coordinator stopped")
	return err
}
