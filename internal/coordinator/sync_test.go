package coordinator

import (
	"context"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
