package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Config shapes one chaos run. The same seed gives the same schedule of
// client choices and faults (timing on a real network still varies).
type Config struct {
	Seed     uint64
	Counters int
	Clients  int
	Tenants  int
	// Duration is how long clients send load and the nemesis injects faults.
	Duration time.Duration
	// MaxOpsPerClient bounds the load whatever the duration.
	MaxOpsPerClient int
	// Calm disables the nemesis.
	Calm bool
	// Attackers send malformed, oversized and forged requests to every
	// public and internal route meanwhile (abuse.go), at most
	// MaxOpsPerClient each; the run then also fails on any answer an
	// attack must not get, on any counter marked dead, and on any failed
	// operation of the ordinary clients. Use it with Calm.
	Attackers int
	// CheckTimeout bounds porcupine.
	CheckTimeout time.Duration
	// ArtifactDir receives the HTML visualisation of a failed run and, when
	// Logger is nil, every node's log of it at KeptLogLevel.
	ArtifactDir string
	Logger      *slog.Logger
	// KeptLogLevel is the level of the log kept for a failed run: info by
	// default; debug (every call of every round) costs CPU that a test
	// running beside others may not have.
	KeptLogLevel slog.Level
	// NoSync runs the counters without fsync: the power cuts of the
	// nemesis then lose acknowledged items, and the checkers must say so.
	NoSync bool
}

func (c Config) withDefaults() Config {
	c.Counters = cmpOr(c.Counters, 3)
	c.Clients = cmpOr(c.Clients, 6)
	c.Tenants = cmpOr(c.Tenants, 3)
	c.Duration = cmpOr(c.Duration, 3*time.Second)
	c.MaxOpsPerClient = cmpOr(c.MaxOpsPerClient, 400)
	c.CheckTimeout = cmpOr(c.CheckTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Result is the outcome of one run.
type Result struct {
	Seed   uint64
	Ops    int
	Faults int
	Report Report
	// Events is the nemesis's log.
	Events []string
	// Artifact is the path of the visualisation written for a failed run.
	Artifact string
	// Attacks is the number of requests the attackers sent.
	Attacks int
}

// Failed reports whether the run found a violation.
func (r Result) Failed() bool { return len(r.Report.Violations) > 0 }

// Run starts a cluster, runs clients and the nemesis for cfg.Duration,
// heals every fault, lets the cluster settle, and checks the history.
func Run(t clustertest.T, cfg Config) Result {
	// Keep the run's log in memory, to write it only if the run fails.
	var runLog *lockedBuffer
	if cfg.Logger == nil && cfg.ArtifactDir != "" {
		runLog = &lockedBuffer{}
		cfg.Logger = slog.New(slog.NewTextHandler(runLog, &slog.HandlerOptions{Level: cfg.KeptLogLevel}))
	}
	cfg = cfg.withDefaults()
	res := Result{Seed: cfg.Seed}
	var memberChanges atomic.Int64
	opts := clustertest.Options{
		Counters:       cfg.Counters,
		HealthInterval: 50 * time.Millisecond,
		CounterTimeout: 250 * time.Millisecond,
		RecoveryTries:  4,
		RecoveryGrace:  100 * time.Millisecond,
		Seed:           cfg.Seed,
		Logger:         cfg.Logger,
		NoSync:         cfg.NoSync,
	}
	if cfg.Attackers > 0 {
		opts.MaxBodyBytes, opts.MaxRoundBytes = attackMaxBody, attackMaxRound
		opts.Logger = slog.New(memberEvents{Handler: cfg.Logger.Handler(), n: &memberChanges})
		// The race detector slows decoding several times over; the
		// committer adds time for large rounds on top of this.
		opts.CounterTimeout = time.Second
	}
	c := clustertest.Start(t, opts)
	ctx := context.Background()
	if err := waitUntil(ctx, 10*time.Second, func() bool { return c.LiveCount(ctx) == cfg.Counters }); err != nil {
		t.Fatalf("seed %d: cluster never became live: %v", cfg.Seed, err)
	}

	h := NewHistory()
	tenants := make([]string, cfg.Tenants)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%d", i)
	}
	n := &nemesis{c: c, rng: rand.New(rand.NewPCG(cfg.Seed, 1)), h: h, counters: cfg.Counters}

	loadCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	var wg sync.WaitGroup
	var clientIDs, batches atomic.Int64
	clientIDs.Store(int64(cfg.Clients))
	for i := range cfg.Clients {
		wg.Go(func() {
			w := &worker{c: c, h: h, id: i, next: &clientIDs, tenants: tenants, batches: &batches,
				rng: rand.New(rand.NewPCG(cfg.Seed, uint64(100+i)))}
			w.run(loadCtx, cfg.MaxOpsPerClient)
		})
	}
	if !cfg.Calm {
		wg.Go(func() { n.run(loadCtx) })
	}
	attackers := make([]*attacker, cfg.Attackers)
	for i := range attackers {
		attackers[i] = newAttacker(c, cfg.Seed+uint64(i))
		wg.Go(func() { attackers[i].run(loadCtx, cfg.MaxOpsPerClient) })
	}
	wg.Wait()
	for _, a := range attackers {
		res.Attacks += int(a.sent.Load())
	}

	n.healAll(t)
	final, err := settle(ctx, c, tenants)
	ops := h.Ops()
	res.Ops, res.Faults, res.Events = len(ops), n.faults, n.events
	if err != nil {
		// Without a final state the set checks would report every id lost;
		// the failure to recover is the finding.
		res.Report.Violations = append(checkReads(ops), Violation{Check: "availability", Tenant: "*", Detail: err.Error()})
	} else {
		res.Report = Check(ops, final, cfg.CheckTimeout)
	}
	if cfg.Attackers > 0 {
		res.Report.Violations = append(res.Report.Violations, abuseViolations(attackers, ops, memberChanges.Load())...)
	}
	if res.Failed() && cfg.ArtifactDir != "" {
		res.Artifact = writeArtifacts(cfg, res, n.annotations, ops)
		if runLog != nil {
			_ = os.WriteFile(filepath.Join(cfg.ArtifactDir, fmt.Sprintf("chaos-seed-%d.log", cfg.Seed)), runLog.Bytes(), 0o644)
		}
	}
	return res
}

// writeArtifacts writes the porcupine page and the raw history of a failed run.
func writeArtifacts(cfg Config, res Result, notes []porcupine.Annotation, ops []Op) string {
	if err := os.MkdirAll(cfg.ArtifactDir, 0o755); err != nil {
		return ""
	}
	base := filepath.Join(cfg.ArtifactDir, fmt.Sprintf("chaos-seed-%d", cfg.Seed))
	res.Report.info.AddAnnotations(notes)
	html := base + ".html"
	if err := res.Report.Visualize(html); err != nil {
		cfg.Logger.Warn("visualisation not written", "err", err)
		html = base + ".json"
	}
	if data, err := json.MarshalIndent(struct {
		Seed       uint64
		Violations []Violation
		Events     []string
		Ops        []Op
	}{cfg.Seed, res.Report.Violations, res.Events, ops}, "", " "); err == nil {
		_ = os.WriteFile(base+".json", data, 0o644)
	}
	return html
}

// settle waits until every counter is live again, then reads the final
// state: the coordinator's count and every counter's ids, per tenant.
func settle(ctx context.Context, c *clustertest.Cluster, tenants []string) (Final, error) {
	final := Final{Counts: map[string]int64{}, IDs: map[string]map[string][]string{}}
	if err := waitUntil(ctx, 20*time.Second, func() bool {
		supervise(c)
		return c.LiveCount(ctx) == len(c.Counters)
	}); err != nil {
		return final, fmt.Errorf("counters not all live after healing: %w", err)
	}
	// One write through every live counter makes each learn that the last
	// round is stable, so their fenced reads and ids agree.
	if err := waitUntil(ctx, 10*time.Second, func() bool {
		resp, err := c.Add(ctx, wire.Item{ID: "settle", Tenant: "chaos-settle"})
		return err == nil && resp.Status == http.StatusOK
	}); err != nil {
		return final, fmt.Errorf("no write succeeds after healing: %w", err)
	}
	for _, t := range tenants {
		n, err := c.Count(ctx, t)
		if err != nil {
			return final, fmt.Errorf("final read of %s: %w", t, err)
		}
		final.Counts[t] = n
		final.IDs[t] = map[string][]string{}
		for _, node := range c.Counters {
			ids, err := c.IDs(ctx, node, t)
			if err != nil {
				return final, fmt.Errorf("final ids of %s on %s: %w", t, node.Name, err)
			}
			final.IDs[t][node.Name] = ids
		}
	}
	return final, nil
}

var errTimeout = errors.New("condition not met before the deadline")

func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errTimeout
		case <-t.C:
		}
	}
	return nil
}

// worker is one client: it adds fresh ids, retries adds whose outcome it
// did not learn, and reads counts, recording every operation.
type worker struct {
	c       *clustertest.Cluster
	h       *History
	id      int
	next    *atomic.Int64
	tenants []string
	rng     *rand.Rand
	seq     int
	unknown [][]part // adds to retry
	batches *atomic.Int64
}

// part is the ids of one tenant in an add.
type part struct {
	tenant string
	ids    []string
}

func (w *worker) run(ctx context.Context, maxOps int) {
	for range maxOps {
		// A short pause between operations spreads the bounded load over
		// the run, so faults meet traffic and histories stay small enough
		// for porcupine.
		think := time.NewTimer(time.Duration(w.rng.IntN(12)) * time.Millisecond)
		select {
		case <-ctx.Done():
			think.Stop()
			return
		case <-think.C:
		}
		tenant := w.tenants[w.rng.IntN(len(w.tenants))]
		switch r := w.rng.Float64(); {
		case r < 0.3 && len(w.unknown) > 0:
			retry := w.unknown[0]
			w.unknown = w.unknown[1:]
			w.add(ctx, retry)
		case r < 0.55:
			parts := []part{{tenant: tenant, ids: w.ids(1 + w.rng.IntN(3))}}
			if len(w.tenants) > 1 && w.rng.IntN(3) == 0 {
				// A request across two tenants: atomic as a whole.
				other := w.tenants[(slices.Index(w.tenants, tenant)+1+w.rng.IntN(len(w.tenants)-1))%len(w.tenants)]
				parts = append(parts, part{tenant: other, ids: w.ids(1 + w.rng.IntN(2))})
			}
			w.add(ctx, parts)
		default:
			w.read(ctx, tenant)
		}
	}
}

// opTimeout bounds each client request; longer than the coordinator needs
// to give up on a paused counter, so most outcomes are known.
const opTimeout = 3 * time.Second

// ids returns n fresh ids of this worker.
func (w *worker) ids(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		w.seq++
		ids[i] = fmt.Sprintf("w%d-%d", w.id, w.seq)
	}
	return ids
}

// add posts one request with the ids of every part, and records it as one
// Op per tenant.
func (w *worker) add(ctx context.Context, parts []part) {
	var its []wire.Item
	for _, p := range parts {
		for _, id := range p.ids {
			its = append(its, wire.Item{ID: id, Tenant: p.tenant})
		}
	}
	batch := 0
	if len(parts) > 1 {
		batch = int(w.batches.Add(1))
	}
	call := w.h.Now()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	resp, err := w.c.Add(rctx, its...)
	cancel()
	ret := w.h.Now()
	var outcome Outcome
	switch {
	case err == nil && resp.Status == http.StatusOK:
		outcome = OK
	case err == nil && resp.Status == http.StatusServiceUnavailable &&
		(resp.Error().Code == wire.CodeUnavailable || resp.Error().Code == wire.CodeOverloaded):
		outcome = Failed // the coordinator promises nothing was applied
	case errors.Is(err, syscall.ECONNREFUSED):
		outcome = Failed // never delivered: the coordinator was down
	default:
		outcome = Unknown
	}
	for _, p := range parts {
		w.h.Record(Op{Client: w.id, Kind: Add, Tenant: p.tenant, IDs: p.ids, Batch: batch, Call: call, Return: ret, Outcome: outcome})
	}
	if outcome == Unknown {
		w.unknown = append(w.unknown, parts)
		// Like Jepsen: a client whose op may still take effect is replaced
		// by a new one, so its ops stay sequential in the history.
		w.id = int(w.next.Add(1)) - 1
	}
}

func (w *worker) read(ctx context.Context, tenant string) {
	op := Op{Client: w.id, Kind: Read, Tenant: tenant, Call: w.h.Now()}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	n, err := w.c.Count(rctx, tenant)
	cancel()
	op.Return = w.h.Now()
	op.Count = n
	op.Outcome = OK
	if err != nil {
		op.Outcome = Failed
	}
	w.h.Record(op)
}

// nemesis injects faults at random moments until its context ends.
type nemesis struct {
	c        *clustertest.Cluster
	rng      *rand.Rand
	h        *History
	counters int

	mu          sync.Mutex
	faults      int
	events      []string
	annotations []porcupine.Annotation
	heals       []func()
	wg          sync.WaitGroup
}

func (n *nemesis) note(start, end int64, desc string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, fmt.Sprintf("%s..%s %s", ms(start), ms(end), desc))
	n.annotations = append(n.annotations, porcupine.Annotation{Tag: "nemesis", Start: start, End: end, Description: desc})
}

func (n *nemesis) run(ctx context.Context) {
	defer n.wg.Wait()
	for {
		pause := time.Duration(50+n.rng.IntN(200)) * time.Millisecond
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		n.inject(ctx)
	}
}

// inject starts one fault and schedules its healing.
func (n *nemesis) inject(ctx context.Context) {
	c := n.c
	target := n.rng.IntN(n.counters)
	node := c.Counters[target]
	dur := time.Duration(100+n.rng.IntN(600)) * time.Millisecond
	var desc string
	var heal func()
	switch k := n.rng.IntN(140); {
	case k < 8:
		// Stop a counter and start it again: it comes back with its data.
		node.Stop()
		desc = "restart " + node.Name
		heal = func() { node.Start(nopT{}) }
	case k < 20:
		// A power cut of one counter: it comes back with what it synced.
		node.Crash()
		desc = "power-cut " + node.Name
		heal = func() { node.Start(nopT{}) }
	case k < 40:
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Fault: clustertest.Hold})
		rm2 := c.Faults.Add(clustertest.Rule{From: node.Name, Fault: clustertest.Hold})
		desc, heal = "pause "+node.Name, func() { rm(); rm2() }
	case k < 55:
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Fault: clustertest.Drop})
		rm2 := c.Faults.Add(clustertest.Rule{From: node.Name, Fault: clustertest.Drop})
		desc, heal = "partition "+node.Name, func() { rm(); rm2() }
	case k < 62:
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Fault: clustertest.Drop})
		desc, heal = "one-way partition coordinator->"+node.Name, rm
	case k < 72:
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Fault: clustertest.DropResponse, Prob: 0.3})
		desc, heal = "lose 30% of answers from "+node.Name, rm
	case k < 82:
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Fault: clustertest.Duplicate, Prob: 0.5})
		desc, heal = "duplicate 50% of messages to "+node.Name, rm
	case k < 86:
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Fault: clustertest.Delay, Delay: time.Duration(n.rng.IntN(300)) * time.Millisecond, Prob: 0.5})
		desc, heal = "delay messages to "+node.Name, rm
	case k < 93:
		// Commits reach this counter late: the others apply a round first.
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Path: "/internal/commit", Fault: clustertest.Delay, Delay: time.Duration(20+n.rng.IntN(150)) * time.Millisecond})
		desc, heal = "delay commits to "+node.Name, rm
	case k < 100:
		c.Coordinator.Stop()
		c.Coordinator.Start(nopT{})
		desc, heal, dur = "restart coordinator", func() {}, 0
	// Faults aimed at bringing counters up to date.
	case k < 105:
		// A snapshot source stops sending: the transfer must move on.
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Path: "/internal/snapshot", Fault: clustertest.Hold})
		desc, heal = "pause snapshots from "+node.Name, rm
	case k < 110:
		// Installs into a counter hang while its health checks fail: it
		// is marked dead mid-install and synced again, and the old stream
		// arrives late, into the newer session.
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Path: "/internal/install", Fault: clustertest.Hold})
		rm2 := c.Faults.Add(clustertest.Rule{Host: node.Host(), Path: "/internal/status", Fault: clustertest.Drop})
		desc, heal = "stall installs into "+node.Name+" and fail its checks", func() { rm2(); rm() }
	case k < 115:
		// While a counter is being synced, every live counter pauses: the
		// promotion round dies with the last live counter.
		if c.LiveCount(ctx) == n.counters {
			return
		}
		var rms []func()
		for _, m := range c.Counters {
			if c.State(ctx, m) == "live" {
				rms = append(rms, c.Faults.Add(clustertest.Rule{Host: m.Host(), Fault: clustertest.Hold}),
					c.Faults.Add(clustertest.Rule{From: m.Name, Fault: clustertest.Hold}))
			}
		}
		desc, heal = "pause every live counter during a sync", func() {
			for _, rm := range rms {
				rm()
			}
		}
	case k < 120:
		// The coordinator cannot write its state file: rounds whose
		// holders change abort, a recovery exits the coordinator.
		restore, err := c.BreakStateFile()
		if err != nil {
			return
		}
		desc, heal = "fail the coordinator's state file", func() {
			restore()
			if c.Coordinator.Exited() {
				c.Coordinator.Stop()
				c.Coordinator.Start(nopT{})
			}
		}
	case k < 125:
		// Two syncs of one counter at the same join seq: it is marked
		// dead (checks fail) right after it joined, while the cluster
		// is idle, and synced again.
		rm := c.Faults.Add(clustertest.Rule{Host: node.Host(), Path: "/internal/status", Fault: clustertest.Drop})
		desc, heal = "fail the checks of "+node.Name, rm
	case k < 133:
		// A power cut of every counter at once: every copy keeps only
		// what it synced, which must be every acknowledged item.
		clustertest.Crash(c.Counters...)
		desc, heal = "power-cut every counter", func() { startAll(c.Counters) }
	default:
		// A power cut of the whole host: every counter and the coordinator.
		clustertest.Crash(append([]*clustertest.Node{c.Coordinator}, c.Counters...)...)
		desc, heal = "power-cut every counter and the coordinator", func() {
			startAll([]*clustertest.Node{c.Coordinator})
			startAll(c.Counters)
		}
	}
	start := n.h.Now()
	n.mu.Lock()
	n.faults++
	n.heals = append(n.heals, heal)
	idx := len(n.heals) - 1
	n.mu.Unlock()
	n.wg.Go(func() {
		select {
		case <-time.After(dur):
		case <-ctx.Done():
		}
		n.healOne(idx)
		n.note(start, n.h.Now(), desc)
	})
}

func (n *nemesis) healOne(idx int) {
	n.mu.Lock()
	heal := n.heals[idx]
	n.heals[idx] = nil
	n.mu.Unlock()
	if heal != nil {
		heal()
	}
}

// healAll ends every fault: rules removed, every stopped node started.
func (n *nemesis) healAll(t clustertest.T) {
	n.wg.Wait()
	n.mu.Lock()
	heals := slices.Clone(n.heals)
	n.mu.Unlock()
	for i := range heals {
		n.healOne(i)
	}
	n.c.Faults.Clear()
	for _, node := range append([]*clustertest.Node{n.c.Coordinator}, n.c.Counters...) {
		if node.Exited() {
			node.Stop()
		}
		if !node.Running() {
			node.Start(t)
		}
	}
}

// supervise restarts the coordinator when it exited on its own, as
// Compose's restart policy (unless-stopped) does: by design it exits when
// a recovery cannot write its state file. healAll restarts it when it
// finds it exited, but it may be failing from that fault at the instant
// the fault is healed: it exited just after healAll had looked (seed
// 2381249947490907), and nothing started it again. Counters are left
// alone: none exits on its own under these faults, and one that did
// should be reported.
func supervise(c *clustertest.Cluster) {
	if c.Coordinator.Exited() {
		c.Coordinator.Stop()
		c.Coordinator.Start(nopT{})
	}
}

// startAll starts the nodes that are not running.
func startAll(nodes []*clustertest.Node) {
	for _, node := range nodes {
		if !node.Running() {
			node.Start(nopT{})
		}
	}
}

// nopT lets the nemesis restart nodes from its own goroutines; a failure
// to restart shows as a node that never comes back, which settle reports.
type nopT struct{}

func (nopT) Helper()               {}
func (nopT) Fatalf(string, ...any) {}
func (nopT) Cleanup(func())        {}

// abuseViolations judges a run with attackers: every attack got an answer
// it may get, no counter was marked dead or removed, and every operation of
// the ordinary clients succeeded.
func abuseViolations(attackers []*attacker, ops []Op, memberChanges int64) []Violation {
	var vs []Violation
	for _, a := range attackers {
		a.mu.Lock()
		vs = append(vs, a.violations...)
		a.mu.Unlock()
	}
	if memberChanges > 0 {
		vs = append(vs, Violation{Check: "abuse", Tenant: "*", Detail: fmt.Sprintf("%d counters marked dead or removed", memberChanges)})
	}
	failed := 0
	for _, op := range ops {
		if op.Outcome != OK {
			failed++
		}
	}
	if failed > 0 {
		vs = append(vs, Violation{Check: "abuse", Tenant: "*", Detail: fmt.Sprintf("%d of %d operations of ordinary clients failed", failed, len(ops))})
	}
	return vs
}

// lockedBuffer is a buffer the nodes' loggers share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns what was written.
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
