package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/membership"
	"github.com/distributed-counter/distributed-counter/internal/remote"
)

// Run serves the public API on public and the internal API on internal
// until ctx ends, then shuts down gracefully: the servers stop taking
// requests and finish those in flight (their rounds included) before the
// background loops stop. client makes the calls to counters (tests inject
// faults through it). If recovery fails (its state file cannot be
// written), Run stops the same way and returns the error: a coordinator
// that cannot run rounds exits, for its supervisor to restart it, rather
// than answer forever as if it were recovering.
func Run(ctx context.Context, cfg Config, public, internal net.Listener, client *http.Client, logger *slog.Logger) error {
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
	counters := remote.NewCounters(client, cfg.ClusterToken)
	svc := NewService(cfg, counters, state, time.Now, logger)
	// The epoch of this coordinator is above the previous one's, and above
	// every epoch the counters report (see Register). It is reserved in the
	// state file before any counter hears of it, so a coordinator started
	// after this one, even in the same second, fences above it.
	svc.fence = max(uint64(time.Now().Unix()), saved.Epoch+1, saved.Fence+1)
	reserved := saved
	reserved.Fence = svc.fence
	if err := state.save(reserved); err != nil {
		return fmt.Errorf("reserve the epoch: %w", err)
	}
	found = found && saved.recorded()
	logger.Info("coordinator starting", "addr", public.Addr().String(), "internal_addr", internal.Addr().String(),
		"authenticated", cfg.ClusterToken != "", "recovery_grace", cfg.RecoveryGrace.String(),
		"data_dir", cfg.DataDir, "saved_state", found, "saved_holders", saved.Holders)
	if cfg.ClusterToken == "" {
		logger.Warn("running without a cluster token (CLUSTER_INSECURE): anyone who reaches the internal port can register counters")
	}

	serveCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		pos, err := svc.awaitRecovery(loopCtx, saved, found)
		if err != nil {
			if loopCtx.Err() == nil {
				logger.Error("recovery failed; stopping", "err", err)
				fail(fmt.Errorf("recovery: %w", err))
			}
			return
		}
		svc.committer.Run(loopCtx, pos)
	})
	wg.Go(func() { svc.syncLoop(loopCtx) })
	monitor := &membership.Monitor{
		Registry:    svc.registry,
		Prober:      counters,
		Interval:    cfg.HealthInterval,
		Timeout:     cfg.CounterTimeout,
		Now:         time.Now,
		Logger:      logger,
		Resync:      svc.resync,
		Removed:     counters.Forget,
		ProbeFailed: func() { svc.metrics.probeFailures.Inc() },
	}
	wg.Go(func() { monitor.Run(loopCtx) })
	wg.Go(func() { svc.metrics.run(loopCtx) })

	err = serveBoth(serveCtx, cfg, netutil.LimitListener(public, cfg.MaxConnections), netutil.LimitListener(internal, cfg.MaxConnections), svc, logger)
	stopLoops()
	wg.Wait()
	logger.Info("coordinator stopped")
	if cause := context.Cause(serveCtx); ctx.Err() == nil && cause != nil {
		return errors.Join(cause, err)
	}
	return err
}

// serveBoth serves both listeners until ctx ends or one of them fails.
func serveBoth(ctx context.Context, cfg Config, public, internal net.Listener, svc *Service, logger *slog.Logger) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	limits := func(write time.Duration) httpserver.Timeouts {
		return httpserver.Timeouts{
			MaxHeaderBytes: int(cfg.MaxHeaderBytes),
			ReadHeader:     5 * time.Second,
			Read:           cfg.HTTPTimeout,
			Write:          write,
			Idle:           time.Minute,
			Shutdown:       cfg.ShutdownTimeout,
		}
	}
	var wg sync.WaitGroup
	var errPublic, errInternal error
	wg.Go(func() {
		defer stop()
		// The write deadline runs from the end of the headers: the body
		// may take HTTP_TIMEOUT, then the round REQUEST_TIMEOUT.
		errPublic = httpserver.Serve(ctx, public, publicRoutes(logger, svc, cfg),
			limits(cfg.HTTPTimeout+cfg.RequestTimeout+5*time.Second), logger)
	})
	wg.Go(func() {
		defer stop()
		errInternal = httpserver.Serve(ctx, internal, internalRoutes(logger, svc, cfg), limits(cfg.HTTPTimeout), logger)
	})
	wg.Wait()
	return errors.Join(errPublic, errInternal)
}
