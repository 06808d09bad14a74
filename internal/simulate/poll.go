package simulate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout reports a condition that did not hold before its deadline.
var ErrTimeout = errors.New("deadline passed")

// check looks at the system once: done when the awaited state is reached,
// saw what it observed, err when the observation already breaks an
// expectation and waiting longer is pointless.
type check func(ctx context.Context) (done bool, saw string, err error)

// poll runs c every interval until it is done or fails, or timeout passes.
// It returns c's last observation; on timeout the error names it.
func poll(ctx context.Context, timeout, interval time.Duration, c check) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, saw, err := c(pctx)
		if err != nil || done {
			return saw, err
		}
		select {
		case <-pctx.Done():
			if err := ctx.Err(); err != nil {
				return saw, err // interrupted, not a timeout
			}
			return saw, fmt.Errorf("%w (%s): last saw %s", ErrTimeout, timeout, saw)
		case <-t.C:
		}
	}
}
