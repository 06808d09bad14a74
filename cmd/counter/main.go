// Command counter holds one copy of distributed-counter's data and takes
// part in the coordinator's two-phase commit rounds.
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

	"github.com/distributed-counter/distributed-counter/internal/counter"
	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg counter.Config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return httpserver.Healthcheck(cfg.HTTPPort, "/health", cfg.ClusterToken)
	}
	if len(os.Args) == 2 && os.Args[1] == "status" {
		return httpserver.Status(os.Stdout, cfg.HTTPPort, cfg.ClusterToken)
	}
	if len(os.Args) == 3 && os.Args[1] == "localcount" {
		return httpserver.LocalCount(os.Stdout, cfg.HTTPPort, cfg.ClusterToken, os.Args[2])
	}
	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	cfg = cfg.WithDefaults(hostname)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	level, _ := cfg.Level()
	logger := httpserver.NewLogger(os.Stderr, level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.HTTPPort))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	client := &http.Client{Timeout: cfg.SyncTimeout, Transport: httpserver.NewTransport()}
	return counter.Run(ctx, cfg, ln, client, logger)
}
