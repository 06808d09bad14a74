package membership

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Prober asks one counter how it is.
type Prober interface {
	Probe(ctx context.Context, id string) (wire.Status, error)
}

// Monitor health-checks every member at a fixed interval and applies the
// results to the registry. Counters that must be (re)synced are handed to
// Resync.
type Monitor struct {
	Registry *Registry
	Prober   Prober
	Interval time.Duration
	Timeout  time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// Resync is called for each counter that answers and must be brought up to date.
	Resync func(id, incarnation string)
	// Removed, when set, is called for each counter removed from the registry.
	Removed func(id string)
	// ProbeFailed, when set, is called for each failed health check.
	ProbeFailed func()
}

// Run checks all members every Interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.CheckAll(ctx)
		}
	}
}

// CheckAll probes every member once, in parallel, and waits for the results.
func (m *Monitor) CheckAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, member := range m.Registry.List() {
		wg.Go(func() { m.check(ctx, member) })
	}
	wg.Wait()
}

func (m *Monitor) check(ctx context.Context, member Member) {
	pctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	st, err := m.Prober.Probe(pctx, member.ID)
	if ctx.Err() != nil {
		return // shutting down: not the counter's fault
	}
	if err != nil {
		if m.ProbeFailed != nil {
			m.ProbeFailed()
		}
		state, removed := m.Registry.ProbeFailed(member.ID, m.Now(), err)
		switch {
		case removed:
			m.Logger.Warn("counter removed", "node", member.ID, "err", err)
			if m.Removed != nil {
				m.Removed(member.ID)
			}
		case member.State != state:
			m.Logger.Warn("counter marked dead", "node", member.ID, "err", err)
		}
		return
	}
	if m.Registry.ProbeOK(member.ID, m.Now(), st.Incarnation, st.Mode == wire.ModeReady, st.Last.Seq) {
		m.Logger.Info("counter answers again, resyncing", "node", member.ID, "state", member.State)
		m.Resync(member.ID, st.Incarnation)
	}
}
