// Package clustertest runs a whole cluster, a coordinator and N counters,
// as real HTTP servers on 127.0.0.1 inside the test process, with a
// fault-injecting transport between them and a client for the public API.
package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/cockroachdb/pebble/v2/vfs"

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
	// MaxBodyBytes bounds a POST /items body (1 MiB by default).
	MaxBodyBytes int64
	// MaxRoundBytes bounds a round's prepare, on the coordinator and on
	// every counter (64 MiB by default).
	MaxRoundBytes int64
	// MaxInflightRequests bounds the public requests served at once (1024).
	MaxInflightRequests int
	// MaxCounters bounds the registered counters (64).
	MaxCounters int
	// SyncTimeout bounds bringing one counter up to date (10s).
	SyncTimeout time.Duration
	// RequestTimeout bounds one client request (5s).
	RequestTimeout time.Duration
	// Seed drives the probabilistic fault rules.
	Seed uint64
	// Logger receives every node's logs; nil discards them.
	Logger *slog.Logger
	// NoSync runs the counters without fsync (DATA_FSYNC=false): a crash
	// then loses acknowledged rounds, which the crash tests must catch.
	NoSync bool
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
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxRoundBytes == 0 {
		o.MaxRoundBytes = 64 << 20
	}
	if o.MaxInflightRequests == 0 {
		o.MaxInflightRequests = 1024
	}
	if o.MaxCounters == 0 {
		o.MaxCounters = 64
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 10 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
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
	// Token is the cluster token every node shares; tests that play an
	// attacker leave it out.
	Token string

	opts     Options
	counters *remote.Counters
	dataDir  string // the coordinator's DATA_DIR
}

// Node is one process of the cluster: it can be stopped and started again
// on the same addresses. A counter keeps its data on an in-memory file
// system that outlives its process: Stop and Start restart it with its
// data (and a new incarnation), Crash keeps only what it had synced, and
// Wipe gives it an empty disk, and so a new identity.
type Node struct {
	Name string
	// URL is the node's base URL, stable across restarts: the public API
	// of the coordinator, the (only, internal) API of a counter.
	URL string
	// InternalURL is the coordinator's internal API; empty for a counter.
	InternalURL string
	addrs       []string
	run         func(ctx context.Context, lns []net.Listener, d disk) error
	cut         *cutSwitch // a crash cuts the process off the network at once

	mu     sync.Mutex
	first  []net.Listener // bound at creation, used by the first Start
	cancel context.CancelFunc
	done   chan error
	exited chan struct{} // closed when the process has returned
	fs     *vfs.MemFS    // a counter's disk
	id     string        // a counter's identity, given to each new disk
	wipes  int
}

// Start runs a cluster for the duration of the test.
func Start(t T, opts Options) *Cluster {
	t.Helper()
	opts = opts.withDefaults()
	c := &Cluster{
		Faults: NewFaults(opts.Seed),
		Client: &http.Client{Timeout: 10 * time.Second},
		Token:  rand.Text() + rand.Text(), // 52 characters of base32
		opts:   opts,
	}
	c.counters = remote.NewCounters(c.Client, c.Token)
	dataDir, err := os.MkdirTemp("", "clustertest-coordinator-")
	if err != nil {
		t.Fatalf("coordinator data dir: %v", err)
	}
	c.dataDir = dataDir
	t.Cleanup(func() { _ = os.RemoveAll(dataDir + ".off"); _ = os.RemoveAll(dataDir) })
	c.Coordinator = c.newNode(t, "coordinator", 2, func(ctx context.Context, lns []net.Listener, n *Node, _ disk) error {
		cfg := CoordinatorConfig(opts)
		cfg.DataDir = dataDir
		cfg.ClusterToken = c.Token
		return coordinator.Run(ctx, cfg, lns[0], lns[1], c.nodeClient(n), opts.Logger.With("proc", "coordinator"))
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
		HealthInterval:      opts.HealthInterval,
		RecoveryTries:       opts.RecoveryTries,
		RequestTimeout:      opts.RequestTimeout,
		CounterTimeout:      opts.CounterTimeout,
		SyncTimeout:         opts.SyncTimeout,
		HTTPTimeout:         10 * time.Second,
		MaxBodyBytes:        opts.MaxBodyBytes,
		MaxItemsPerRequest:  10000,
		MaxInflightRequests: opts.MaxInflightRequests,
		MaxInflightBytes:    64 << 20,
		MaxConnections:      4096,
		MaxHeaderBytes:      16 << 10,
		MaxQueuedRequests:   1024,
		MaxRoundBytes:       opts.MaxRoundBytes,
		MaxCounters:         opts.MaxCounters,
		MinLiveCounters:     opts.MinLive,
		MaxBatchItems:       10000,
		RecoveryGrace:       opts.RecoveryGrace,
		ShutdownTimeout:     200 * time.Millisecond,
		LogLevel:            "debug",
	}
}

// Options returns the cluster's options, defaults filled in.
func (c *Cluster) Options() Options { return c.opts }

// AddCounter creates a counter node; call Start on it to run it.
func (c *Cluster) AddCounter(t T, name string) *Node {
	t.Helper()
	n := c.newNode(t, name, 1, func(ctx context.Context, lns []net.Listener, n *Node, d disk) error {
		cfg := counter.Config{
			CoordinatorURL:     c.Coordinator.InternalURL,
			AdvertiseURL:       n.URL,
			DataDir:            "/data",
			DataSlots:          1,
			DataFsync:          !c.opts.NoSync,
			FS:                 d.fs,
			NewID:              d.id,
			ClusterToken:       c.Token,
			RegisterInterval:   c.opts.HealthInterval,
			CoordinatorTimeout: c.opts.CounterTimeout,
			SyncTimeout:        c.opts.SyncTimeout,
			HTTPTimeout:        10 * time.Second,
			MaxConnections:     4096,
			MaxHeaderBytes:     16 << 10,
			MaxRoundBytes:      c.opts.MaxRoundBytes,
			ShutdownTimeout:    200 * time.Millisecond,
			LogLevel:           "debug",
		}
		return counter.Run(ctx, cfg, lns[0], c.nodeClient(n), c.opts.Logger.With("proc", name))
	})
	n.fs, n.id = vfs.NewCrashableMem(), name
	c.counters.SetAddress(n.id, n.URL)
	c.Counters = append(c.Counters, n)
	return n
}

// nodeClient is the outbound client of node n: every call goes through
// Faults, and none leaves once n has crashed.
func (c *Cluster) nodeClient(n *Node) *http.Client {
	base := &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil}
	return &http.Client{Timeout: 10 * time.Second, Transport: n.cut.transport(c.Faults.Transport(n.Name, base))}
}

// newNode creates a node with listeners listeners on 127.0.0.1: the first
// is its URL, the second (the coordinator's) its InternalURL.
func (c *Cluster) newNode(t T, name string, listeners int, run func(ctx context.Context, lns []net.Listener, n *Node, d disk) error) *Node {
	t.Helper()
	n := &Node{Name: name, cut: &cutSwitch{}}
	for range listeners {
		ln, err := listenFree()
		if err != nil {
			t.Fatalf("listen for %s: %v", name, err)
		}
		n.first = append(n.first, ln)
		n.addrs = append(n.addrs, ln.Addr().String())
	}
	n.URL = "http://" + n.addrs[0]
	if listeners > 1 {
		n.InternalURL = "http://" + n.addrs[1]
	}
	n.run = func(ctx context.Context, lns []net.Listener, d disk) error { return run(ctx, lns, n, d) }
	return n
}

// Host returns the node's host:port, as fault rules match it: a counter's
// only one, the coordinator's public one.
func (n *Node) Host() string { return n.addrs[0] }

// InternalHost returns the coordinator's internal host:port.
func (n *Node) InternalHost() string { return n.addrs[len(n.addrs)-1] }

// Start runs the node (again) on its address.
func (n *Node) Start(t T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil {
		t.Fatalf("%s already running", n.Name)
	}
	lns := n.first
	n.first = nil
	if lns == nil {
		for _, addr := range n.addrs {
			ln, err := listenAgain(addr)
			if err != nil {
				for _, l := range lns {
					_ = l.Close()
				}
				t.Fatalf("start %s on %s: %v", n.Name, addr, err)
				return
			}
			lns = append(lns, ln)
		}
	}
	for i, ln := range lns {
		lns[i] = n.cut.listener(ln)
	}
	n.cut.reset()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	d := disk{fs: n.fs, id: n.id}
	go func() {
		err := n.run(ctx, lns, d)
		// A process that returned before serving (a coordinator that could
		// not read its state) never closed its listeners: the next start
		// could not bind them again.
		for _, ln := range lns {
			_ = ln.Close()
		}
		done <- err
		close(exited)
	}()
	n.cancel, n.done, n.exited = cancel, done, exited
}

// listenAgain binds addr, retrying while the previous run releases it.
func listenAgain(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(10 * time.Millisecond) // the port is being released by the previous run
	}
}

// Stop stops the node and waits until it has; a no-op if it is not running.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ln := range n.first {
		_ = ln.Close()
	}
	n.first = nil
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
	n.cancel, n.done, n.exited = nil, nil, nil
}

// Exited reports whether the node was started and its process has
// returned by itself (a coordinator whose recovery failed).
func (n *Node) Exited() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// BreakStateFile makes the coordinator's state file impossible to write,
// and to read, its directory replaced by a file, until restore is called.
func (c *Cluster) BreakStateFile() (restore func(), err error) {
	off := c.dataDir + ".off"
	if err := os.Rename(c.dataDir, off); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.dataDir, nil, 0o600); err != nil {
		return nil, err
	}
	return func() {
		_ = os.Remove(c.dataDir)
		_ = os.Rename(off, c.dataDir)
	}, nil
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
	return c.counters.LocalCount(ctx, n.ID(), tenantID)
}

// IDs asks a counter directly for the ids it holds for a tenant.
func (c *Cluster) IDs(ctx context.Context, n *Node, tenantID string) ([]string, error) {
	return c.counters.IDs(ctx, n.ID(), tenantID)
}

// CounterClient is a client of the counters' internal API with the
// cluster token, which knows every counter's address.
func (c *Cluster) CounterClient() *remote.Counters { return c.counters }

// Members returns the coordinator's view of the counters, from its
// internal API: with each counter's id.
func (c *Cluster) Members(ctx context.Context) (wire.CountersResponse, error) {
	var cr wire.CountersResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Coordinator.InternalURL+"/internal/counters", nil)
	if err != nil {
		return cr, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.Client.Do(req)
	if err != nil {
		return cr, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cr, fmt.Errorf("GET /internal/counters: %s", resp.Status)
	}
	return cr, json.NewDecoder(resp.Body).Decode(&cr)
}

// State returns the coordinator's state of one counter ("" if unknown).
func (c *Cluster) State(ctx context.Context, n *Node) string {
	cr, err := c.Members(ctx)
	if err != nil {
		return ""
	}
	for _, m := range cr.Counters {
		if m.ID == n.ID() {
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
