// Command bench loads a running cluster's public API (make up, or -url)
// with C concurrent keep-alive clients for a bounded time and number of
// requests, prints a progress line each second and, at the end, requests/s,
// items/s, latency percentiles and errors, then checks that every tenant it
// wrote counts between the ids it had acknowledged and those it attempted.
// Its tenants are new on each run.
//
// With -suite (make bench) it runs four loads (POST of 1 item, POST of 10,
// GET count, and 90% reads with 10% writes of 10) against three targets:
// the ceiling (internal/ceiling in a FROM scratch container on a port
// Docker publishes on 127.0.0.1, what a Compose service can reach), the
// same handler on bare loopback for reference, and the cluster; and prints
// each figure with its ratio to the ceiling's, measured in the same run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

type config struct {
	url                           string
	clients, batch                int
	tenants                       int
	reads                         float64
	duration                      time.Duration
	maxRequests                   int64
	timeout                       time.Duration
	jsonOut, noVerify, retryAfter bool
	quiet                         bool // no progress lines
	cpu                           bool // measure the host's CPU per process during the load
}

// result is what one run measured.
type result struct {
	Load        string         `json:"load,omitempty"`
	Target      string         `json:"target,omitempty"`
	Pass        int            `json:"pass,omitempty"`
	Ratio       float64        `json:"ratio_to_ceiling,omitempty"`
	Clients     int            `json:"clients"`
	Batch       int            `json:"batch"`
	ReadShare   float64        `json:"read_share"`
	Seconds     float64        `json:"seconds"`
	Requests    int64          `json:"requests"`
	RequestsSec float64        `json:"requests_per_sec"`
	ItemsSec    float64        `json:"items_per_sec"`
	P50ms       float64        `json:"p50_ms"`
	P90ms       float64        `json:"p90_ms"`
	P99ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	Errors      map[string]int `json:"errors"`
	Verified    string         `json:"verified"`
	CPU         *CPUUse        `json:"cpu,omitempty"`
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "http://127.0.0.1:8080", "the coordinator's public API")
	flag.IntVar(&cfg.clients, "c", 64, "concurrent keep-alive clients")
	flag.IntVar(&cfg.batch, "batch", 1, "items per POST")
	flag.IntVar(&cfg.tenants, "tenants", 100, "tenants written and read (new ones each run)")
	flag.Float64Var(&cfg.reads, "reads", 0, "share of requests that are GET count (0..1)")
	flag.DurationVar(&cfg.duration, "d", 10*time.Second, "duration of the load")
	flag.Int64Var(&cfg.maxRequests, "n", 10_000_000, "most requests in all")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "deadline of each request")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the result as JSON")
	flag.BoolVar(&cfg.noVerify, "no-verify", false, "skip the count check at the end")
	flag.BoolVar(&cfg.cpu, "cpu", true, "print the CPU-seconds each process of the host used during the load (from /proc, Linux only)")
	flag.BoolVar(&cfg.retryAfter, "retry-after", true, "after a 503 with Retry-After, a client waits that long (at most 10 s) before its next request")
	suite := flag.Bool("suite", false, "run the four loads against the ceiling, bare loopback and the cluster (make bench)")
	image := flag.String("ceiling-image", "distributed-counter/ceiling:latest", "image of the ceiling for -suite")
	repeat := flag.Int("repeat", 1, "with -suite: passes of the ceiling and the cluster per load, and a median ratio")
	flag.Parse()
	if cfg.clients < 1 || cfg.batch < 1 || cfg.tenants < 1 || cfg.reads < 0 || cfg.reads > 1 || cfg.duration <= 0 || *repeat < 1 || *repeat > 20 {
		fmt.Fprintln(os.Stderr, "bench: -c, -batch and -tenants must be at least 1, -reads in 0..1, -d positive, -repeat in 1..20")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *suite {
		if err := runSuite(ctx, cfg, *image, *repeat); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(ctx, cfg)
	if cfg.jsonOut {
		_ = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Printf("clients=%d batch=%d reads=%.2f: %d requests in %.1fs: %.0f req/s, %.0f items/s; p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; errors %v; %s\n",
			res.Clients, res.Batch, res.ReadShare, res.Requests, res.Seconds, res.RequestsSec, res.ItemsSec, res.P50ms, res.P90ms, res.P99ms, res.MaxMs, res.Errors, res.Verified)
		if res.CPU != nil {
			fmt.Println(res.CPU)
			fmt.Println(res.CPU.PerRequest(res.Requests))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) (result, error) {
	client := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{MaxIdleConns: cfg.clients, MaxIdleConnsPerHost: cfg.clients, Proxy: nil}}
	prefix := uuid.NewString()[:8]
	tenant := func(i int) string { return fmt.Sprintf("bench-%s-%d", prefix, i) }

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      = map[string]int{}
		acked     = make([]int64, cfg.tenants) // ids acknowledged per tenant: every id is new
		attempted = make([]int64, cfg.tenants)
		sent      atomic.Int64
		itemsDone atomic.Int64
	)
	lctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	cpuBefore, cpuOK := cpuSample{}, false
	if cfg.cpu {
		cpuBefore, cpuOK = sampleCPU()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			var own []time.Duration
			for n := 0; lctx.Err() == nil && sent.Add(1) <= cfg.maxRequests; n++ {
				t := rng.IntN(cfg.tenants)
				read := rng.Float64() < cfg.reads
				var req *http.Request
				if read {
					req, _ = http.NewRequestWithContext(lctx, http.MethodGet, cfg.url+"/items/"+url.PathEscape(tenant(t))+"/count", nil)
				} else {
					items := make([]wire.Item, cfg.batch)
					for k := range items {
						items[k] = wire.Item{ID: fmt.Sprintf("%d-%d-%d", w, n, k), Tenant: tenant(t)}
					}
					body, _ := json.Marshal(items)
					req, _ = http.NewRequestWithContext(lctx, http.MethodPost, cfg.url+"/items", bytes.NewReader(body))
					mu.Lock()
					attempted[t] += int64(cfg.batch)
					mu.Unlock()
				}
				began := time.Now()
				resp, err := client.Do(req)
				took := time.Since(began)
				if err != nil {
					if lctx.Err() == nil {
						mu.Lock()
						errs["transport"]++
						mu.Unlock()
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					errs[fmt.Sprint(resp.StatusCode)]++
					mu.Unlock()
					if pause := retryAfter(resp); cfg.retryAfter && pause > 0 {
						// A well-behaved client waits as the shed answer asks.
						t := time.NewTimer(pause)
						select {
						case <-lctx.Done():
						case <-t.C:
						}
						t.Stop()
					}
					continue
				}
				own = append(own, took)
				if !read {
					itemsDone.Add(int64(cfg.batch))
					mu.Lock()
					acked[t] += int64(cfg.batch)
					mu.Unlock()
				}
			}
			mu.Lock()
			latencies = append(latencies, own...)
			mu.Unlock()
		})
	}
	progress := time.NewTicker(time.Second)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-progress.C:
			if cfg.quiet {
				continue
			}
			fmt.Fprintf(os.Stderr, "[%4.1fs] %d requests sent, %d items acknowledged\n", time.Since(start).Seconds(), min(sent.Load(), cfg.maxRequests), itemsDone.Load())
		case <-done:
			waiting = false
		}
	}
	progress.Stop()
	elapsed := time.Since(start).Seconds()
	var cpu *CPUUse
	if cpuAfter, ok := sampleCPU(); cpuOK && ok {
		u := cpuAfter.since(cpuBefore)
		cpu = &u
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	res := result{Clients: cfg.clients, Batch: cfg.batch, ReadShare: cfg.reads, Seconds: elapsed, Requests: int64(len(latencies)),
		RequestsSec: float64(len(latencies)) / elapsed, ItemsSec: float64(itemsDone.Load()) / elapsed,
		P50ms: pct(0.5), P90ms: pct(0.9), P99ms: pct(0.99), MaxMs: pct(1), Errors: errs, Verified: "not checked", CPU: cpu}
	if cfg.noVerify || cfg.reads == 1 {
		return res, nil
	}
	for t := range cfg.tenants {
		vctx, vcancel := context.WithTimeout(ctx, cfg.timeout)
		n, err := count(vctx, client, cfg.url, tenant(t))
		vcancel()
		if err != nil {
			res.Verified = "check failed"
			return res, fmt.Errorf("count of %s: %w", tenant(t), err)
		}
		if n < acked[t] || n > attempted[t] {
			res.Verified = "WRONG"
			return res, fmt.Errorf("%s counts %d; %d acknowledged, %d attempted", tenant(t), n, acked[t], attempted[t])
		}
	}
	res.Verified = fmt.Sprintf("every count of the %d tenants between acknowledged and attempted", cfg.tenants)
	return res, nil
}

func count(ctx context.Context, client *http.Client, base, tenantID string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/items/"+url.PathEscape(tenantID)+"/count", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var cr wire.CountResponse
	return cr.Count, json.NewDecoder(resp.Body).Decode(&cr)
}

// retryAfter is the pause a shed answer asks for (Retry-After in seconds),
// at most 10 s; zero without one.
func retryAfter(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		return 0
	}
	return time.Duration(min(secs, 10)) * time.Second
}
