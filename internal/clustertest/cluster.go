// Package clustertest runs a whole cluster, a coordinator and N counters,
// as real HTTP servers on 127.0.0.1 inside the test process, with a
// fault-injecting transport between them and a client for the public API.
package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/coordinator"
	"github.com/distributed-counter/distributed-counter/internal/counter"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// T is the part of T the cluster needs, so that a program (the
// chaos soak) can run clusters too.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Options shape a test cluster. Zero values take the short defaults below.
type Options struct {
	Counters       int
	HealthInterval time.Duration
	CounterTimeout time.Duration
	RecoveryTries  int
	RecoveryGrace  time.Duration
	MinLive        int
	// Seed drives the probabilistic fault rules.
	Seed uint64
	// Logger receives every node's logs; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Counters == 0 {
		o.Counters = 3
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 50 * time.Millisecond
	}
	if o.CounterTimeout == 0 {
		o.CounterTimeout = 300 * time.Millisecond
	}
	if o.RecoveryTries == 0 {
		o.RecoveryTries = 4
	}
	if o.RecoveryGrace == 0 {
		o.RecoveryGrace = 20 * time.Millisecond
	}
	if o.MinLive == 0 {
		o.MinLive = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Cluster is a running test cluster.
type Cluster struct {
	Coordinator *Node
	Counters    []*Node
	// Faults applies to every call between nodes (coordinator to counters
	// and counters to coordinator). Rules match by destination host.
	Faults *Faults
	// Client calls the public API and the counters directly, without faults.
	Client *http.Client

	opts     Options
	counters *remote.Counters
}

// Node is one process of the cluster: it can be stopped and started again
// on the same address, which is how a crash and restart look to the others.
// A restarted counter has lost its state and has a new incarnation.
type Node struct {
	Name string
	// URL is the node's base URL, stable across restarts.
	URL  string
	addr string
	run  func(ctx context.Context, ln net.Listener) error

	mu     sync.Mutex
	first  net.Listener // bound at creation, used by the first Start
	cancel context.CancelFunc
	done   chan error
}

// Start runs a cluster for the duration of the test.
func Start(t T, opts Options) *Cluster {
	t.Helper()
	opts = opts.withDefaults()
	c := &Cluster{
		Faults: NewFaults(opts.Seed),
		Client: &http.Client{Timeout: 10 * time.Second},
		opts:   opts,
	}
	c.counters = remote.NewCounters(c.Client)
	dataDir, err := os.MkdirTemp("", "clustertest-coordinator-")
	if err != nil {
		t.Fatalf("coordinator data dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	c.Coordinator = c.newNode(t, "coordinator", func(ctx context.Context, ln net.Listener, self string) error {
		cfg := CoordinatorConfig(opts)
		cfg.DataDir = dataDir
		return coordinator.Run(ctx, cfg, ln, c.nodeClient("coordinator"), opts.Logger.With("proc", "coordinator"))
	})
	for i := range opts.Counters {
		c.AddCounter(t, fmt.Sprintf("counter-%d", i+1))
	}
	t.Cleanup(func() {
		c.Faults.Clear()
		for _, n := range append([]*Node{c.Coordinator}, c.Counters...) {
			n.Stop()
		}
		c.Faults.Wait()
	})
	c.Coordinator.Start(t)
	for _, n := range c.Counters {
		n.Start(t)
	}
	return c
}

// CoordinatorConfig is the coordinator configuration a test cluster uses.
func CoordinatorConfig(opts Options) coordinator.Config {
	opts = opts.withDefaults()
	return coordinator.Config{
		HealthInterval:  opts.HealthInterval,
		RecoveryTries:   opts.RecoveryTries,
		RequestTimeout:  5 * time.Second,
		CounterTimeout:  opts.CounterTimeout,
		SyncTimeout:     10 * time.Second,
		MaxBodyBytes:    1 << 20,
		MinLiveCounters: opts.MinLive,
		MaxBatchItems:   10000,
		RecoveryGrace:   opts.RecoveryGrace,
		ShutdownTimeout: 200 * time.Millisecond,
		LogLevel:        "debug",
	}
}

// Options returns the cluster's options, defaults filled in.
func (c *Cluster) Options() Options { return c.opts }

// AddCounter creates a counter node; call Start on it to run it.
func (c *Cluster) AddCounter(t T, name string) *Node {
	t.Helper()
	n := c.newNode(t, name, func(ctx context.Context, ln net.Listener, self string) error {
		cfg := counter.Config{
			CoordinatorURL:     c.Coordinator.URL,
			AdvertiseURL:       self,
			RegisterInterval:   c.opts.HealthInterval,
			CoordinatorTimeout: c.opts.CounterTimeout,
			SyncTimeout:        10 * time.Second,
			MaxRoundBytes:      64 << 20,
			ShutdownTimeout:    200 * time.Millisecond,
			LogLevel:           "debug",
		}
		return counter.Run(ctx, cfg, ln, c.nodeClient(name), c.opts.Logger.With("proc", name))
	})
	c.Counters = append(c.Counters, n)
	return n
}

// nodeClient is the outbound client of the named node: every call goes
// through Faults.
func (c *Cluster) nodeClient(from string) *http.Client {
	base := &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil}
	return &http.Client{Timeout: 10 * time.Second, Transport: c.Faults.Transport(from, base)}
}

func (c *Cluster) newNode(t T, name string, run func(ctx context.Context, ln net.Listener, self string) error) *Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for %s: %v", name, err)
	}
	addr := ln.Addr().String()
	n := &Node{Name: name, URL: "http://" + addr, addr: addr, first: ln}
	n.run = func(ctx context.Context, ln net.Listener) error { return run(ctx, ln, n.URL) }
	return n
}

// Host returns the node's host:port, as fault rules match it.
func (n *Node) Host() string { return n.addr }

// Start runs the node (again) on its address.
func (n *Node) Start(t T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil {
		t.Fatalf("%s already running", n.Name)
	}
	ln, err := n.first, error(nil)
	n.first = nil
	deadline := time.Now().Add(5 * time.Second)
	for ln == nil {
		if ln, err = net.Listen("tcp", n.addr); err == nil || time.Now().After(deadline) {
			break
		}
		ln = nil
		time.Sleep(10 * time.Millisecond) // the port is being released by the previous run
	}
	if err != nil {
		t.Fatalf("start %s on %s: %v", n.Name, n.addr, err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.run(ctx, ln) }()
	n.cancel, n.done = cancel, done
}

// Stop stops the node and waits until it has; a no-op if it is not running.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.first != nil {
		_ = n.first.Close()
		n.first = nil
	}
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
	n.cancel, n.done = nil, nil
}

// Running reports whether the node runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cancel != nil
}

// Response is an answer of the public API.
type Response struct {
	Status int
	Body   []byte
}

// Decode unmarshals the body into v.
func (r Response) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Error decodes an error body.
func (r Response) Error() wire.Error {
	var e wire.Error
	_ = json.Unmarshal(r.Body, &e)
	return e
}

// Do sends a request to the coordinator.
func (c *Cluster) Do(ctx context.Context, method, path string, body []byte) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Coordinator.URL+path, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Body: data}, err
}

// Add posts items to the coordinator.
func (c *Cluster) Add(ctx context.Context, items ...wire.Item) (Response, error) {
	if items == nil {
		items = []wire.Item{} // an empty array, not null
	}
	body, err := json.Marshal(items)
	if err != nil {
		return Response{}, err
	}
	return c.Do(ctx, http.MethodPost, "/items", body)
}

// Count reads a tenant's count through the coordinator; the error covers
// transport failures and non-200 answers.
func (c *Cluster) Count(ctx context.Context, tenantID string) (int64, error) {
	resp, err := c.Do(ctx, http.MethodGet, "/items/"+url.PathEscape(tenantID)+"/count", nil)
	if err != nil {
		return 0, err
	}
	if resp.Status != http.StatusOK {
		return 0, fmt.Errorf("count %q: %d %s", tenantID, resp.Status, resp.Body)
	}
	var cr wire.CountResponse
	if err := resp.Decode(&cr); err != nil {
		return 0, err
	}
	return cr.Count, nil
}

// LocalCount asks a counter directly for its own count.
func (c *Cluster) LocalCount(ctx context.Context, n *Node, tenantID string) (wire.LocalCountResponse, error) {
	return c.counters.LocalCount(ctx, n.URL, tenantID)
}

// IDs asks a counter directly for the ids it holds for a tenant.
func (c *Cluster) IDs(ctx context.Context, n *Node, tenantID string) ([]string, error) {
	return c.counters.IDs(ctx, n.URL, tenantID)
}

// Members returns the coordinator's view of the counters.
func (c *Cluster) Members(ctx context.Context) (wire.CountersResponse, error) {
	var cr wire.CountersResponse
	resp, err := c.Do(ctx, http.MethodGet, "/counters", nil)
	if err != nil {
		return cr, err
	}
	return cr, resp.Decode(&cr)
}

// State returns the coordinator's state of one counter ("" if unknown).
func (c *Cluster) State(ctx context.Context, n *Node) string {
	cr, err := c.Members(ctx)
	if err != nil {
		return ""
	}
	for _, m := range cr.Counters {
		if m.ID == n.URL {
			return m.State
		}
	}
	return ""
}

// LiveCount returns how many counters the coordinator has live.
func (c *Cluster) LiveCount(ctx context.Context) int {
	cr, err := c.Members(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range cr.Counters {
		if m.State == "live" {
			n++
		}
	}
	return n
}
