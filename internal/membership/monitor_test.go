package membership_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/membership"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

type fakeProber struct {
	mu   sync.Mutex
	down bool
}

func (p *fakeProber) Probe(context.Context, string) (wire.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return wire.Status{}, errDown
	}
	return wire.Status{Incarnation: "a-inc", Mode: wire.ModeReady}, nil
}

func (p *fakeProber) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

func TestMonitor_MarksDeadResyncsAndRemoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := membership.New(4, 64, time.Now)
		liveMember(t, r, "a")
		prober := &fakeProber{}
		var mu sync.Mutex
		var resynced []string
		m := &membership.Monitor{
			Registry: r, Prober: prober, Interval: 10 * time.Second, Timeout: time.Second,
			Now: time.Now, Logger: slog.New(slog.DiscardHandler),
			Resync: func(id, _ string) { mu.Lock(); resynced = append(resynced, id); mu.Unlock() },
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go m.Run(ctx)

		prober.setDown(true)
		time.Sleep(10 * time.Second) // fake time: exactly one health check
		synctest.Wait()
		got, _ := r.Get("a")
		assert.Equal(t, membership.Dead, got.State, "one failed check marks it dead")

		prober.setDown(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		mu.Lock()
		assert.Equal(t, []string{"a"}, resynced, "a dead counter that answers is resynced")
		mu.Unlock()
		liveMember(t, r, "a") // the resync made it live again

		prober.setDown(true)
		time.Sleep(40 * time.Second) // four failed checks: dead again, then 3 more
		synctest.Wait()
		_, ok := r.Get("a")
		require.True(t, ok, "not removed before RECOVERY_TRIES more failures")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		_, ok = r.Get("a")
		assert.False(t, ok, "removed after 4 more failures")
	})
}
