// Command coordinator serves the public API of distributed-counter and
// replicates every write to the counters with two-phase commit.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/distributed-counter/distributed-counter/internal/coordinator"
	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg coordinator.Config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return httpserver.Healthcheck(cfg.HTTPPort, "/health", "")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	level, _ := cfg.Level()
	logger := httpserver.NewLogger(os.Stderr, level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	public, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.HTTPPort))
	if err != nil {
		return fmt.Errorf("listen on HTTP_PORT: %w", err)
	}
	internal, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.InternalPort))
	if err != nil {
		return fmt.Errorf("listen on INTERNAL_PORT: %w", err)
	}
	client := &http.Client{Timeout: cfg.SyncTimeout, Transport: httpserver.NewTransport()}
	return coordinator.Run(ctx, cfg, public, internal, client, logger)
}
