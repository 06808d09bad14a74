package coordinator

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// stepReader gives one byte per step, then blocks until its context ends.
type stepReader struct {
	ctx   context.Context
	steps chan struct{}
}

func (s *stepReader) Read(b []byte) (int, error) {
	select {
	case <-s.steps:
		b[0] = 'x'
		return 1, nil
	case <-s.ctx.Done():
		return 0, context.Cause(s.ctx)
	}
}

// TestStallGuard_EndsATransferThatStopsMoving is the regression test of a
// paused snapshot source that held a sync until SYNC_TIMEOUT (5 minutes)
// instead of being swapped: a transfer that moves keeps going, one that
// makes no progress for the idle time ends with errStalled.
func TestStallGuard_EndsATransferThatStopsMoving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, guard, stop := stallGuard(t.Context(), time.Second)
		defer stop()
		src := &stepReader{ctx: ctx, steps: make(chan struct{})}
		r := guard(src)
		buf := make([]byte, 1)
		for range 10 { // ten bytes, 900 ms apart: 9 s in all, never idle for 1 s
			go func() { time.Sleep(900 * time.Millisecond); src.steps <- struct{}{} }()
			_, err := r.Read(buf)
			require.NoError(t, err)
		}
		_, err := r.Read(buf) // the source pauses
		assert.ErrorIs(t, err, errStalled)
		assert.ErrorIs(t, context.Cause(ctx), errStalled)
		_, err = io.ReadAll(r)
		assert.Error(t, err)
	})
}

// TestJoin_WaitsForTheCommitterBeforeItsFirstRound is the regression test
// of a counter marked dead right after a coordinator started (the abuse
// test caught it): syncs queued at the end of recovery sent their join
// from the committer's position before the loop had one, with no cluster
// id, and the counter rejected it.
func TestJoin_WaitsForTheCommitterBeforeItsFirstRound(t *testing.T) {
	var mu sync.Mutex
	var joins []wire.JoinRequest
	counter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := wire.DecodeJoin(body)
		if err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, wire.CodeInvalid, err.Error())
			return
		}
		mu.Lock()
		joins = append(joins, req)
		mu.Unlock()
		httpserver.WriteJSON(w, http.StatusOK, wire.JoinResponse{Incarnation: "inc", Complete: true})
	}))
	defer counter.Close()

	cfg := Config{CounterTimeout: time.Second, MaxCounters: 4, MinLiveCounters: 1, MaxBatchItems: 10, MaxRoundBytes: 1 << 20}
	counters := remote.NewCounters(&http.Client{Timeout: time.Second}, "")
	counters.SetAddress("c1", counter.URL)
	svc := NewService(cfg, counters, newStateFile(""), time.Now, slog.New(slog.DiscardHandler))
	gen, ok := svc.registry.StartSync("c1", "inc")
	require.True(t, ok)
	joined := make(chan error, 1)
	go func() {
		_, _, _, err := svc.join(t.Context(), "c1", "inc", gen)
		joined <- err
	}()
	// Before the loop runs, a join cannot have a position to join at: it
	// must wait. (A bounded wait for something that must not happen: on a
	// very slow machine the test could miss the bug, never invent one.)
	select {
	case err := <-joined:
		t.Fatalf("the join finished before the committer had a position: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go svc.committer.Run(ctx, twopc.Position{Epoch: 7, ClusterID: "history"}) // recovery has ended
	require.NoError(t, <-joined)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, joins)
	for _, j := range joins {
		assert.Equal(t, "history", j.ClusterID, "every join names the history the loop runs")
	}
}
