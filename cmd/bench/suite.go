package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/ceiling"
)

// load is one kind of traffic of the suite.
type load struct {
	name  string
	batch int
	reads float64
}

var loads = []load{
	{"POST 1 item", 1, 0},
	{"POST 10 items", 10, 0},
	{"GET count", 1, 1},
	{"mixed 90% GET, 10% POST of 10", 10, 0.9},
}

// runSuite runs every load against the ceiling container, bare loopback
// and the cluster at cfg.url, and prints the table (or JSON lines). With
// repeat > 1 each load alternates the ceiling and the cluster that many
// times (bare loopback once), each cluster figure is taken against the
// ceiling's just before it, and a last line gives the median ratio: the
// host's speed drifts by tens of percent within minutes here, and a pair
// of neighbouring runs shares most of that drift.
func runSuite(ctx context.Context, cfg config, image string, repeat int) error {
	bare, stopBare, err := serveBare()
	if err != nil {
		return err
	}
	defer stopBare()
	container, stopContainer, err := startCeiling(ctx, image)
	if err != nil {
		return err
	}
	defer stopContainer()
	fmt.Fprintf(os.Stderr, "ceiling container on %s, bare loopback on %s, cluster on %s; %d clients, %s per load and target, %d pass(es)\n",
		container, bare, cfg.url, cfg.clients, cfg.duration, repeat)
	if !cfg.jsonOut {
		fmt.Printf("%-31s %-14s %9s %10s %8s %8s %8s %8s %7s  %s\n", "load", "target", "req/s", "items/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "ratio", "errors")
	}
	var failed []error
	for _, l := range loads {
		var ratios []float64
		for pass := 1; pass <= repeat; pass++ {
			targets := []struct{ name, url string }{{"ceiling", container}, {"bare loopback", bare}, {"cluster", cfg.url}}
			if pass > 1 {
				targets = slices.Delete(targets, 1, 2)
			}
			var ceilingRate float64
			for _, tg := range targets {
				c := cfg
				c.url, c.batch, c.reads, c.quiet = tg.url, l.batch, l.reads, true
				c.noVerify = cfg.noVerify || tg.name != "cluster"
				res, err := run(ctx, c)
				res.Load, res.Target, res.Pass = l.name, tg.name, pass
				rate := res.ItemsSec
				if l.reads > 0 {
					rate = res.RequestsSec
				}
				if tg.name == "ceiling" {
					ceilingRate = rate
				}
				if ceilingRate > 0 {
					res.Ratio = rate / ceilingRate
				}
				if tg.name == "cluster" {
					ratios = append(ratios, res.Ratio)
				}
				if err != nil {
					failed = append(failed, fmt.Errorf("%s on %s: %w", l.name, tg.name, err))
				}
				if cfg.jsonOut {
					_ = json.NewEncoder(os.Stdout).Encode(res)
				} else {
					fmt.Printf("%-31s %-14s %9.0f %10.0f %8.1f %8.1f %8.1f %8.1f %6.2fx  %v %s\n", l.name, tg.name, res.RequestsSec, res.ItemsSec,
						res.P50ms, res.P90ms, res.P99ms, res.MaxMs, res.Ratio, res.Errors, verified(res))
					if res.CPU != nil && tg.name != "bare loopback" {
						fmt.Printf("%-31s %-14s %s\n", "", "", res.CPU)
						fmt.Printf("%-31s %-14s %s\n", "", "", res.CPU.PerRequest(res.Requests))
					}
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		if repeat > 1 {
			m := median(ratios)
			if cfg.jsonOut {
				_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"load": l.name, "target": "cluster", "median_ratio_to_ceiling": m, "passes": repeat})
			} else {
				fmt.Printf("%-31s %-14s %66.2fx  (median of %d passes)\n", l.name, "cluster", m, repeat)
			}
		}
	}
	return errors.Join(failed...)
}

// median of xs (not empty), which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func verified(r result) string {
	if r.Verified == "not checked" {
		return ""
	}
	return r.Verified
}

// serveBare serves the ceiling's handler on 127.0.0.1 in this process.
func serveBare() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: ceiling.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// startCeiling runs the ceiling image on a port Docker publishes on
// 127.0.0.1 and waits until it answers.
func startCeiling(ctx context.Context, image string) (string, func(), error) {
	id, err := docker(ctx, "run", "-d", "--rm", "-p", "127.0.0.1::8080", image)
	if err != nil {
		return "", nil, err
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = docker(sctx, "rm", "-f", id)
	}
	port, err := docker(ctx, "port", id, "8080/tcp")
	if err != nil {
		stop()
		return "", nil, err
	}
	addr := "http://" + strings.Fields(port)[0]
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(addr + "/items/x/count")
		if err == nil {
			_ = resp.Body.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("the ceiling container did not answer on %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond) // the container is starting
	}
}

func docker(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
