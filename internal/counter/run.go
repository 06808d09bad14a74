package counter

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/netutil"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Run serves the counter on ln and keeps it registered with the
// coordinator until ctx ends, then shuts down gracefully. client makes the
// outbound calls (tests inject faults through its transport).
func Run(ctx context.Context, cfg Config, ln net.Listener, client *http.Client, logger *slog.Logger) error {
	incarnation := uuid.NewString()
	logger = logger.With("node", cfg.AdvertiseURL)
	svc := NewService(cfg.AdvertiseURL, incarnation)
	logger.Info("counter starting", "addr", ln.Addr().String(), "incarnation", incarnation, "coordinator", cfg.CoordinatorURL,
		"authenticated", cfg.ClusterToken != "")
	if cfg.ClusterToken == "" {
		logger.Warn("running without a cluster token (CLUSTER_INSECURE): anyone who reaches this counter can change its data")
	}

	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		register(loopCtx, svc, remote.NewCoordinator(client, cfg.CoordinatorURL, cfg.ClusterToken), cfg.RegisterInterval, cfg.CoordinatorTimeout, logger)
	})

	err := httpserver.Serve(ctx, netutil.LimitListener(ln, cfg.MaxConnections), NewServer(logger, svc, cfg), httpserver.Timeouts{
		MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		ReadHeader:     5 * time.Second,
		Read:           cfg.HTTPTimeout, // snapshot streams extend their own (ExtendDeadlines)
		Write:          cfg.HTTPTimeout,
		Idle:           time.Minute,
		Shutdown:       cfg.ShutdownTimeout,
	}, logger)
	stopLoops()
	wg.Wait()
	logger.Info("counter stopped")
	return err
}

// register announces the counter to the coordinator at start and then every
// interval, so that a coordinator that restarted, or removed this counter
// while it was unreachable, learns of it again. The coordinator's answer
// carries its epoch, which the counter adopts as its fence. Failures are retried with
// a backoff that starts short, so a starting cluster forms quickly.
func register(ctx context.Context, svc *Service, coord *remote.Coordinator, interval, timeout time.Duration, logger *slog.Logger) {
	const minBackoff, maxBackoff = 50 * time.Millisecond, 500 * time.Millisecond
	backoff := minBackoff
	registered, failing := false, false
	for {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := coord.Register(rctx, svc.Status())
		cancel()
		wait := interval
		if err == nil && resp.Epoch <= wire.MaxEpoch && svc.AdoptFence(resp.Epoch) {
			// Report again at once: a recovering coordinator counts only
			// reports made under its fence.
			logger.Info("fenced at the coordinator's epoch", "epoch", resp.Epoch)
			wait = 0
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				logger.Warn("registration with coordinator failed; retrying", "err", err)
			}
			registered, failing = false, true
			wait = min(backoff, interval)
			backoff = min(backoff*2, interval, maxBackoff)
		default:
			if !registered {
				logger.Info("registered with coordinator")
			}
			registered, failing, backoff = true, false, minBackoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
