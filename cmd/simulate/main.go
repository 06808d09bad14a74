// Command simulate runs the failure scenario of `make simulate` against a
// fresh Docker Compose cluster and exits 1 at the first expectation that
// does not hold. It drives Docker through the docker and compose CLIs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/simulate"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

func run() error {
	compose := flag.String("compose", "docker-compose", `compose CLI: "docker compose" (v2) or "docker-compose" (v1)`)
	file := flag.String("file", "docker-compose.yml", "compose file of the cluster")
	project := flag.String("project", "dcsim", "compose project of the cluster under test; removed before and after")
	port := flag.Int("port", 0, "host port of the coordinator; 0 picks a free one")
	timeout := flag.Duration("timeout", 10*time.Minute, "deadline of the whole run")
	crash := flag.Bool("crash", false, "run the crash test (make crash-test) instead of the failure scenario")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return simulate.Run(ctx, simulate.Config{
		Compose:  strings.Fields(*compose),
		File:     *file,
		Project:  *project,
		HTTPPort: *port,
		Env:      os.Environ(),
		Out:      os.Stdout,
		Crash:    *crash,
	})
}
