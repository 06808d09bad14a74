package counter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"
	"golang.org/x/net/netutil"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Run serves the counter on ln and keeps it registered with the
// coordinator until ctx ends, then shuts down gracefully. client makes the
// outbound calls (tests inject faults through its transport).
func Run(ctx context.Context, cfg Config, ln net.Listener, client *http.Client, logger *slog.Logger) error {
	incarnation := uuid.NewString()
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	dir, claim, err := ClaimSlot(fs, cfg.DataDir, cfg.DataSlots)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer claim.Close()
	metrics := NewMetrics()
	l, err := ledger.Open(fs, dir, ledger.Options{Incarnation: incarnation, ID: cfg.NewID, NoSync: !cfg.DataFsync, Logger: logger,
		ObserveSync: metrics.ObserveSync})
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			logger.Error("closing the data", "err", err)
		}
	}()
	st := l.Status()
	logger = logger.With("node", st.ID)
	svc := NewService(l, cfg.AdvertiseURL)
	metrics.Bind(svc, l)
	logger.Info("counter starting", "addr", ln.Addr().String(), "url", cfg.AdvertiseURL, "incarnation", incarnation,
		"coordinator", cfg.CoordinatorURL, "authenticated", cfg.ClusterToken != "",
		"data", dir, "fsync", cfg.DataFsync, "mode", st.Mode, "committed", st.Committed.String(), "items", st.Items)
	if !cfg.DataFsync {
		logger.Warn("running without fsync (DATA_FSYNC=false): acknowledged writes may be lost when the host stops")
	}
	if cfg.ClusterToken == "" {
		logger.Warn("running without a cluster token (CLUSTER_INSECURE): anyone who reaches this counter can change its data")
	}

	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		register(loopCtx, svc, remote.NewCoordinator(client, cfg.CoordinatorURL, cfg.ClusterToken), cfg.RegisterInterval, cfg.CoordinatorTimeout, logger)
	})

	err = httpserver.Serve(ctx, netutil.LimitListener(ln, cfg.MaxConnections), NewServer(logger, svc, metrics, cfg), httpserver.Timeouts{
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
		if err == nil && resp.Epoch <= wire.MaxEpoch {
			switch raised, ferr := svc.AdoptFence(resp.Epoch); {
			case ferr != nil:
				logger.Error("could not record the coordinator's epoch", "err", ferr)
			case raised:
				// Report again at once: a recovering coordinator counts only
				// reports made under its fence.
				logger.Info("fenced at the coordinator's epoch", "epoch", resp.Epoch)
				wait = 0
			}
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

// ClaimSlot claims the first slot directory root/counter-<k>, k < slots,
// that no other process holds, and returns it with the lock that holds it
// (released by Close, or by the process's death). Counters that share one
// volume each get their own data, and a restarted counter finds a slot
// with data in it: whichever slot it gets, its identity is that slot's.
func ClaimSlot(fs vfs.FS, root string, slots int) (string, io.Closer, error) {
	if err := fs.MkdirAll(root, 0o755); err != nil {
		return "", nil, fmt.Errorf("data directory: %w", err)
	}
	var errs []error
	for k := range slots {
		dir := fs.PathJoin(root, fmt.Sprintf("counter-%d", k))
		lock, err := fs.Lock(dir + ".lock")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			_ = lock.Close()
			return "", nil, fmt.Errorf("data directory: %w", err)
		}
		// The new directories' entries must be on disk before any data in
		// them: a power cut would otherwise lose the whole slot.
		if err := errors.Join(syncDir(fs, fs.PathDir(root)), syncDir(fs, root)); err != nil {
			_ = lock.Close()
			return "", nil, fmt.Errorf("data directory: %w", err)
		}
		return dir, lock, nil
	}
	return "", nil, fmt.Errorf("every one of the %d data slots in %s is held by another process (DATA_SLOTS): %w", slots, root, errors.Join(errs...))
}

// syncDir syncs a directory, making the entries created in it durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
