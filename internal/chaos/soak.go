package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"
)

// Summary totals a soak.
type Summary struct {
	Runs, Ops, Faults, Violations int
	// Errors counts runs that could not be carried out (a cluster that did
	// not start); they fail the soak like violations.
	Errors int
}

func (s Summary) String() string {
	out := fmt.Sprintf("chaos: runs=%d ops=%d faults=%d violations=%d", s.Runs, s.Ops, s.Faults, s.Violations)
	if s.Errors > 0 {
		out += fmt.Sprintf(" errors=%d", s.Errors)
	}
	return out
}

// Soak runs the given seeds, or random seeds until duration has passed or
// ctx ends, and prints one line per run to w.
func Soak(ctx context.Context, cfg Config, seeds []uint64, duration time.Duration, w io.Writer) Summary {
	var s Summary
	deadline := time.Now().Add(duration)
	for i := 0; ctx.Err() == nil; i++ {
		var seed uint64
		switch {
		case seeds != nil && i >= len(seeds):
			return s
		case seeds != nil:
			seed = seeds[i]
		case time.Now().After(deadline):
			return s
		default:
			seed = rand.Uint64N(1 << 53) // fits a float64 exactly, for tools that print it
		}
		cfg.Seed = seed
		start := time.Now()
		res, err := runOnce(cfg)
		s.Runs++
		if err != nil {
			s.Errors++
			fmt.Fprintf(w, "run %d seed=%d ERROR %v\n", s.Runs, seed, err)
			continue
		}
		s.Ops += res.Ops
		s.Faults += res.Faults
		s.Violations += len(res.Report.Violations)
		verdict := "ok"
		if res.Failed() {
			verdict = "VIOLATION"
		}
		fmt.Fprintf(w, "run %d seed=%d ops=%d faults=%d %s (%.1fs)\n", s.Runs, seed, res.Ops, res.Faults, verdict, time.Since(start).Seconds())
		for _, v := range res.Report.Violations {
			fmt.Fprintf(w, "  %s\n", v)
		}
		if res.Failed() {
			fmt.Fprintf(w, "  faults: %v\n  visualisation: %s\n  reproduce: go run ./cmd/chaos -seed %d\n", res.Events, res.Artifact, seed)
		}
	}
	return s
}

// runOnce runs one seed outside `go test`, with a T that turns Fatalf into
// an error and runs cleanups at the end.
func runOnce(cfg Config) (res Result, err error) {
	t := &runT{}
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(fatal)
			if !ok {
				panic(v)
			}
			err = f
		}
		t.cleanup()
	}()
	return Run(t, cfg), nil
}

type fatal string

func (f fatal) Error() string { return string(f) }

type runT struct{ cleanups []func() }

func (t *runT) Helper()                           {}
func (t *runT) Fatalf(format string, args ...any) { panic(fatal(fmt.Sprintf(format, args...))) }
func (t *runT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }

func (t *runT) cleanup() {
	for _, f := range slices.Backward(t.cleanups) {
		f()
	}
}
