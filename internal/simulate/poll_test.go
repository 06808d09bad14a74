package simulate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoll_ReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	calls := 0
	saw, err := poll(t.Context(), time.Minute, time.Millisecond, func(context.Context) (bool, string, error) {
		calls++
		return calls == 3, fmt.Sprintf("call %d", calls), nil
	})
	require.NoError(t, err)
	assert.Equal(t, "call 3", saw)
	assert.Equal(t, 3, calls)
}

func TestPoll_StopsAtAViolation(t *testing.T) {
	t.Parallel()
	wrong := errors.New("count 4, want 5")
	calls := 0
	_, err := poll(t.Context(), time.Minute, time.Millisecond, func(context.Context) (bool, string, error) {
		calls++
		return false, "count 4", wrong
	})
	assert.ErrorIs(t, err, wrong)
	assert.Equal(t, 1, calls)
}

func TestPoll_TimeoutNamesTheLastObservation(t *testing.T) {
	t.Parallel()
	_, err := poll(t.Context(), 20*time.Millisecond, time.Millisecond, func(context.Context) (bool, string, error) {
		return false, "counter 1 live", nil
	})
	require.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "last saw counter 1 live")
}

func TestPoll_InterruptionIsNotATimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	_, err := poll(ctx, time.Minute, time.Millisecond, func(context.Context) (bool, string, error) {
		cancel()
		return false, "", nil
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrTimeout)
}
