// Command chaos runs the chaos test for a bounded time with random seeds
// (or one given seed), prints progress, and ends with one summary line. It
// exits non-zero on any violation. `make chaos` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/chaos"
)

func main() {
	defaultDuration := 5 * time.Minute
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_DURATION %q: %v\n", v, err)
			os.Exit(2)
		}
		defaultDuration = d
	}
	duration := flag.Duration("duration", defaultDuration, "total time to run (env CHAOS_DURATION)")
	seed := flag.Uint64("seed", 0, "run this one seed only (to reproduce a failure)")
	runLen := flag.Duration("run", 3*time.Second, "load and fault time of each run")
	artifacts := flag.String("artifacts", "chaos-artifacts", "directory for the visualisations of failed runs")
	logPath := flag.String("log", "", "write every node's debug log to this file")
	noSync := flag.Bool("nosync", false, "run the counters without fsync, to see the power cuts lose acknowledged items")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := chaos.Config{Duration: *runLen, ArtifactDir: *artifacts, KeptLogLevel: slog.LevelDebug, NoSync: *noSync}
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		defer f.Close()
		cfg.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var s chaos.Summary
	if *seed != 0 {
		cfg.Seed = *seed
		s = chaos.Soak(ctx, cfg, []uint64{*seed}, 0, os.Stdout)
	} else {
		s = chaos.Soak(ctx, cfg, nil, *duration, os.Stdout)
	}
	fmt.Println(s)
	if s.Violations > 0 || s.Errors > 0 {
		os.Exit(1)
	}
}
