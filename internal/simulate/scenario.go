// Package simulate runs the original project's failure scenario against a
// fresh Docker Compose cluster of one coordinator and three counters: it
// stops and starts counters, writes and reads through the public API, asks
// each counter for its own counts from inside the compose network, and
// checks every step against a model of the acknowledged writes. It prints
// a timeline and stops at the first violated expectation.
package simulate

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Settings of the cluster under test, short so the scenario takes about a
// minute or two: a dead counter is noticed within a health interval and
// removed after recoveryTries more. recoveryTries is large enough that the
// restarts of steps 3 to 7 come back before the removal, which step 8 waits for.
const (
	counters       = 3
	healthInterval = time.Second
	recoveryTries  = 8
)

// Deadlines of the waits.
const (
	startTimeout   = 90 * time.Second // images start, counters register and sync
	stateTimeout   = 30 * time.Second // a counter is marked dead, comes back, is removed
	removeTimeout  = healthInterval*(recoveryTries+2) + 20*time.Second
	catchUpTimeout = 30 * time.Second // a counter holds every acknowledged round
	retryTimeout   = 15 * time.Second // a write or read answered 5xx is retried
	callTimeout    = 5 * time.Second
	pollInterval   = 200 * time.Millisecond
	stopTimeout    = 10 * time.Second
	logLines       = 50
)

// counterBinary is the counter's path in its image; `counter localcount`
// asks the counter's own port.
const counterBinary = "/counter"

// Config is one run of the scenario.
type Config struct {
	// Compose is the compose CLI: ["docker", "compose"] or ["docker-compose"].
	Compose []string
	File    string
	// Project is the compose project of the cluster under test; it is
	// removed before and after the run, so it must not be a user's cluster.
	Project string
	// HTTPPort is the host port of the coordinator; 0 picks a free one.
	HTTPPort int
	// Env is the environment of the docker and compose commands.
	Env []string
	// Out receives the timeline and, on failure, the logs.
	Out io.Writer
	// Crash runs the crash test (crashSteps) instead of the failure scenario.
	Crash bool
}

// Violation is a step whose expectation did not hold.
type Violation struct {
	Step   string
	Expect string
	Saw    string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s: expected %s; saw %s", v.Step, v.Expect, v.Saw)
}

// Run starts a fresh cluster, runs the scenario and removes the cluster,
// also when a step fails or ctx ends. It returns a *Violation for the first
// expectation that did not hold.
func Run(ctx context.Context, cfg Config) error {
	if len(cfg.Compose) == 0 {
		return errors.New("no compose command")
	}
	port := cfg.HTTPPort
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
	}
	token := rand.Text() + rand.Text()
	env := append(slices.Clone(cfg.Env), clusterEnv(port, token)...)
	r := &runner{
		out:     cfg.Out,
		start:   time.Now(),
		compose: Compose{Command: cfg.Compose, File: cfg.File, Project: cfg.Project, Env: env},
		api: API{
			BaseURL: "http://127.0.0.1:" + strconv.Itoa(port),
			Client:  &http.Client{Timeout: callTimeout},
			Timeout: callTimeout,
		},
		model: newModel(),
		token: token,
	}
	r.logf("cluster: project %s, %d counters, coordinator on 127.0.0.1:%d, HEALTH_INTERVAL=%s RECOVERY_TRIES=%d",
		cfg.Project, counters, port, healthInterval, recoveryTries)
	r.logf("status page: http://127.0.0.1:%d/status (open it in a browser to watch the run); metrics: http://127.0.0.1:%d/metrics",
		port, port)
	// Leftovers of an interrupted run would make the cluster not fresh.
	if err := r.compose.Down(ctx); err != nil {
		return fmt.Errorf("remove leftovers of project %s: %w", cfg.Project, err)
	}
	defer r.cleanup(ctx)
	steps := r.steps()
	if cfg.Crash {
		steps = r.crashSteps()
	}
	err := r.run(ctx, steps)
	if err == nil {
		r.logf("PASS: every expectation held")
		return nil
	}
	if ctx.Err() == nil {
		r.report(ctx, err)
	}
	return err
}

// clusterEnv overrides the variables of .env that the scenario depends on;
// the cluster gets a token of its own.
func clusterEnv(port int, token string) []string {
	return []string{
		"CLUSTER_TOKEN=" + token,
		"CLUSTER_INSECURE=false",
		"HTTP_PORT=" + strconv.Itoa(port),
		"COUNTERS=" + strconv.Itoa(counters),
		"HEALTH_INTERVAL=" + healthInterval.String(),
		"RECOVERY_TRIES=" + strconv.Itoa(recoveryTries),
		"RECOVERY_GRACE=1s",
		"REGISTER_INTERVAL=1s",
		"COUNTER_TIMEOUT=1s",
		"MIN_LIVE_COUNTERS=1",
		"SHUTDOWN_TIMEOUT=5s",
		"COORDINATOR_URL=http://coordinator:8081",
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type runner struct {
	out     io.Writer
	start   time.Time
	compose Compose
	api     API
	model   *model
	// counter[0] is counter 1: compose's replica number 1.
	counter []Container
	// token is the cluster's token (it keys the counters' public names).
	token string
}

// step is one numbered step of the timeline.
type step struct {
	name   string
	expect string
	do     func(ctx context.Context) (saw string, err error)
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) steps() []step {
	c1, c2, c3 := 0, 1, 2
	var inc map[int]string // incarnations before a stop
	return []step{
		{"start a fresh cluster", fmt.Sprintf("coordinator and %d counters running", counters), r.up},
		{"counters registered", fmt.Sprintf("%d counters live, one per container; count of alpha is 0", counters), r.registered},
		{"trust boundary", "only the public port is published; it serves no internal route, and GET /counters shows no internal address", r.boundary},
		{"status page and metrics", fmt.Sprintf("GET /status is the page; GET /status.json shows %d live counters and no counter host; GET /metrics counts them live", counters), r.operations},
		{"add items", "alpha=5 beta=3 bulk=2000: every item counted once, duplicates too", func(ctx context.Context) (string, error) {
			return r.write(ctx,
				append(append(items("alpha", 1, 5), items("alpha", 1, 1)...), items("beta", 1, 3)...),
				append(items("alpha", 3, 3), items("beta", 2, 2)...),
				items("bulk", 1, 2000))
		}},
		{"stop counter 1", "it is marked dead; writes and reads still work (alpha=8 beta=3 bulk=2000)", func(ctx context.Context) (string, error) {
			var err error
			if inc, err = r.incarnations(ctx); err != nil {
				return "", err
			}
			saw, err := r.stop(ctx, c1)
			if err != nil {
				return saw, err
			}
			w, err := r.write(ctx, items("alpha", 6, 8))
			return join(saw, w), err
		}},
		{"start counter 1", "it is back with its data and caught up by delta (only the rounds it missed): live as a new process, its own counts exact (alpha=8 beta=3 bulk=2000)", func(ctx context.Context) (string, error) {
			return r.restart(ctx, inc, c1)
		}},
		{"stop counters 2 and 3", "both are marked dead", func(ctx context.Context) (string, error) {
			var err error
			if inc, err = r.incarnations(ctx); err != nil {
				return "", err
			}
			return r.stop(ctx, c2, c3)
		}},
		{"add items with counter 1 alone", "writes and reads work; counts exact (alpha=12 beta=6 bulk=3000), also asked directly from counter 1", func(ctx context.Context) (string, error) {
			w, err := r.write(ctx, append(items("alpha", 9, 12), items("beta", 4, 6)...), items("bulk", 1501, 3000))
			if err != nil {
				return w, err
			}
			d, err := r.direct(ctx, c1)
			return join(w, d), err
		}},
		{"start counters 2 and 3", "both back, caught up by delta; every counter, asked directly, reports exactly alpha=12 beta=6 bulk=3000", func(ctx context.Context) (string, error) {
			saw, err := r.restart(ctx, inc, c2, c3)
			if err != nil {
				return saw, err
			}
			d, err := r.direct(ctx, c1)
			return join(saw, d), err
		}},
		{"keep counter 3 down past the removal threshold", fmt.Sprintf("dead, then removed after %d more failed checks; writes and reads work without it (alpha=15 beta=7 bulk=3500)", recoveryTries), func(ctx context.Context) (string, error) {
			saw, err := r.stop(ctx, c3)
			if err != nil {
				return saw, err
			}
			gone, err := r.removed(ctx, c3)
			if err != nil {
				return join(saw, gone), err
			}
			w, err := r.write(ctx, append(append(items("alpha", 13, 15), items("beta", 7, 7)...), items("bulk", 3001, 3500)...))
			return join(saw, gone, w), err
		}},
		{"start counter 3 again", "it registers again and catches up; every counter, asked directly, reports exactly alpha=15 beta=7 bulk=3500", func(ctx context.Context) (string, error) {
			saw, err := r.restart(ctx, nil, c3)
			if err != nil {
				return saw, err
			}
			d, err := r.direct(ctx, c1, c2)
			if err != nil {
				return join(saw, d), err
			}
			reads, err := r.reads(ctx)
			return join(saw, d, "API "+reads), err
		}},
	}
}

// run runs the steps in order and stops at the first that fails.
func (r *runner) run(ctx context.Context, steps []step) error {
	for i, s := range steps {
		name := fmt.Sprintf("step %d: %s", i, s.name)
		saw, err := s.do(ctx)
		if err != nil {
			if ctx.Err() != nil {
				r.logf("%s | interrupted: %v", name, ctx.Err())
				return ctx.Err()
			}
			saw = join(saw, err.Error())
			r.logf("%s | expect: %s | saw: %s ✗", name, s.expect, saw)
			return &Violation{Step: name, Expect: s.expect, Saw: saw}
		}
		r.logf("%s | expect: %s | saw: %s ✓", name, s.expect, saw)
	}
	return nil
}

// up starts the cluster and finds its counters.
func (r *runner) up(ctx context.Context) (string, error) {
	if err := r.compose.Up(ctx, counters); err != nil {
		return "", err
	}
	cs, err := r.compose.Containers(ctx, "counter")
	if err != nil {
		return "", err
	}
	if len(cs) != counters {
		return "", fmt.Errorf("%d counter containers, want %d", len(cs), counters)
	}
	r.counter = cs
	if err := r.resolveIDs(ctx); err != nil {
		return "", err
	}
	names := make([]string, len(cs))
	for i, c := range r.counter {
		names[i] = fmt.Sprintf("counter %d = %s (%s, id %s)", i+1, c.Name, c.Hostname, c.CounterID)
	}
	return strings.Join(names, ", "), nil
}

// resolveIDs learns the id of the counter each container runs, polling
// while they start.
func (r *runner) resolveIDs(ctx context.Context) error {
	for i := range r.counter {
		_, err := poll(ctx, startTimeout, pollInterval, func(ctx context.Context) (bool, string, error) {
			id, err := r.compose.CounterIDOf(ctx, r.counter[i], counterBinary)
			if err != nil {
				return false, err.Error(), nil
			}
			r.counter[i].CounterID = id
			return true, id, nil
		})
		if err != nil {
			return fmt.Errorf("id of %s: %w", r.counter[i].Name, err)
		}
	}
	return nil
}

// registered waits until the coordinator has recovered and every counter
// container is live, then reads an empty tenant.
func (r *runner) registered(ctx context.Context) (string, error) {
	begin := time.Now()
	saw, err := poll(ctx, startTimeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		cs, err := r.api.Counters(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		if cs.Recovering {
			return false, "coordinator recovering", nil
		}
		var ids []string
		for _, m := range cs.Counters {
			ids = append(ids, m.Name+" "+m.State)
		}
		slices.Sort(ids)
		var want []string
		for _, c := range r.counter {
			want = append(want, c.PublicName(r.token)+" live")
		}
		slices.Sort(want)
		return slices.Equal(ids, want), "counters: " + strings.Join(ids, ", "), nil
	})
	if err != nil {
		return saw, err
	}
	reads, err := r.reads(ctx, "alpha")
	return fmt.Sprintf("%d live after %.1fs; %s", counters, time.Since(begin).Seconds(), reads), err
}

// boundary checks what a client outside the cluster can reach: the
// coordinator publishes its public port only, answers 404 for internal
// routes there, and names no counter address in GET /counters.
func (r *runner) boundary(ctx context.Context) (string, error) {
	coords, err := r.compose.Containers(ctx, "coordinator")
	if err != nil {
		return "", err
	}
	if len(coords) != 1 {
		return "", fmt.Errorf("%d coordinator containers, want 1", len(coords))
	}
	ports, err := r.compose.PublishedPorts(ctx, coords[0])
	if err != nil {
		return "", err
	}
	saw := []string{"published: " + strings.Join(ports, " ")}
	if !slices.Equal(ports, []string{"8080/tcp"}) {
		return join(saw...), fmt.Errorf("the coordinator publishes %v, want only 8080/tcp", ports)
	}
	for _, probe := range []struct{ method, path, body string }{
		{http.MethodPost, "/internal/register", `{"status":{"id":"http://evil:8080","incarnation":"x","mode":"idle"}}`},
		{http.MethodGet, "/internal/counters", ""},
	} {
		status, _, err := r.api.Raw(ctx, probe.method, probe.path, []byte(probe.body))
		if err != nil {
			return join(saw...), err
		}
		saw = append(saw, fmt.Sprintf("%s %s: %d", probe.method, probe.path, status))
		if status != http.StatusNotFound {
			return join(saw...), fmt.Errorf("%s %s on the public port answered %d, want 404", probe.method, probe.path, status)
		}
	}
	status, body, err := r.api.Raw(ctx, http.MethodGet, "/counters", nil)
	if err != nil {
		return join(saw...), err
	}
	for _, c := range r.counter {
		if status != http.StatusOK || strings.Contains(body, c.Hostname) {
			return join(saw...), fmt.Errorf("GET /counters (%d) names counter host %s: %s", status, c.Hostname, body)
		}
	}
	return join(append(saw, "GET /counters names no counter host")...), nil
}

// operations checks the status page, its data and the public metrics.
func (r *runner) operations(ctx context.Context) (string, error) {
	var saw []string
	status, page, err := r.api.Raw(ctx, http.MethodGet, "/status", nil)
	if err != nil {
		return "", err
	}
	saw = append(saw, fmt.Sprintf("GET /status: %d, %d bytes", status, len(page)))
	if status != http.StatusOK || !strings.Contains(page, "<title>distributed-counter status</title>") {
		return join(saw...), fmt.Errorf("GET /status answered %d without the status page", status)
	}
	status, body, err := r.api.Raw(ctx, http.MethodGet, "/status.json", nil)
	if err != nil {
		return join(saw...), err
	}
	var st wire.StatusResponse
	if err := json.Unmarshal([]byte(body), &st); status != http.StatusOK || err != nil {
		return join(saw...), fmt.Errorf("GET /status.json: %d %v: %s", status, err, body)
	}
	live := 0
	for _, c := range st.Counters {
		if c.State == "live" {
			live++
		}
	}
	saw = append(saw, fmt.Sprintf("status.json: %s, %d live, %d events", st.Phase, live, len(st.Events)))
	if live != len(r.counter) {
		return join(saw...), fmt.Errorf("status.json shows %d live counters, want %d", live, len(r.counter))
	}
	for _, c := range r.counter {
		if strings.Contains(body, c.Hostname) {
			return join(saw...), fmt.Errorf("status.json names counter host %s", c.Hostname)
		}
	}
	status, metrics, err := r.api.Raw(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return join(saw...), err
	}
	want := fmt.Sprintf("dc_counters{state=\"live\"} %d", len(r.counter))
	if status != http.StatusOK || !strings.Contains(metrics, want) {
		return join(saw...), fmt.Errorf("GET /metrics (%d) has no %q", status, want)
	}
	return join(append(saw, "metrics: "+want)...), nil
}

// write adds each batch of items, then reads every tenant.
func (r *runner) write(ctx context.Context, batches ...[]wire.Item) (string, error) {
	n, retries := 0, 0
	for _, batch := range batches {
		tries, err := r.retry(ctx, func(ctx context.Context) error { return r.api.AddItems(ctx, batch) })
		retries += tries - 1
		if err != nil {
			return fmt.Sprintf("write of %d items failed", len(batch)), err
		}
		r.model.add(batch)
		n += len(batch)
	}
	saw := fmt.Sprintf("wrote %d items in %d requests", n, len(batches))
	if retries > 0 {
		saw += fmt.Sprintf(" (%d retried)", retries)
	}
	reads, err := r.reads(ctx)
	return join(saw, reads), err
}

// reads checks the coordinator's count of each tenant (all the model's
// tenants by default) against the model. A count must be exact at once:
// reads are fenced behind every acknowledged write.
func (r *runner) reads(ctx context.Context, tenants ...string) (string, error) {
	if len(tenants) == 0 {
		tenants = r.model.tenants()
	}
	var parts []string
	for _, t := range tenants {
		n, err := r.count(ctx, t)
		if err != nil {
			return strings.Join(parts, " "), err
		}
		parts = append(parts, fmt.Sprintf("%s=%d", t, n))
		if want := r.model.count(t); n != want {
			return strings.Join(parts, " "), fmt.Errorf("coordinator counts %s=%d, want %d", t, n, want)
		}
	}
	return "counts " + strings.Join(parts, " "), nil
}

// count reads a tenant's count through the API, retrying as retry does.
func (r *runner) count(ctx context.Context, tenantID string) (int64, error) {
	var n int64
	_, err := r.retry(ctx, func(ctx context.Context) error {
		var err error
		n, err = r.api.Count(ctx, tenantID)
		return err
	})
	return n, err
}

// retry calls fn until it succeeds, retrying answers that promise it is
// safe to (5xx: nothing applied, or an outcome unknown for idempotent ids)
// and failed connections. It returns the number of calls.
func (r *runner) retry(ctx context.Context, fn func(context.Context) error) (int, error) {
	tries := 0
	_, err := poll(ctx, retryTimeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		tries++
		err := fn(ctx)
		var se *StatusError
		switch {
		case err == nil:
			return true, "", nil
		case errors.As(err, &se) && se.Status < 500:
			return false, err.Error(), err
		default:
			return false, err.Error(), nil
		}
	})
	return tries, err
}

// incarnations returns the incarnation the coordinator knows each counter by.
func (r *runner) incarnations(ctx context.Context) (map[int]string, error) {
	cs, err := r.api.Counters(ctx)
	if err != nil {
		return nil, err
	}
	inc := make(map[int]string)
	for i, c := range r.counter {
		if m, ok := find(cs, c, r.token); ok {
			inc[i] = m.Incarnation
		}
	}
	return inc, nil
}

// join joins the non-empty observations of a step.
func join(saw ...string) string {
	return strings.Join(slices.DeleteFunc(saw, func(s string) bool { return s == "" }), "; ")
}

func find(cs wire.CountersResponse, c Container, token string) (wire.CounterInfo, bool) {
	for _, m := range cs.Counters {
		if m.Name == c.PublicName(token) {
			return m, true
		}
	}
	return wire.CounterInfo{}, false
}

func describe(m wire.CounterInfo, ok bool) string {
	if !ok {
		return "not listed"
	}
	s := m.State
	if m.Failures > 0 {
		s += fmt.Sprintf(" (%d failed checks)", m.Failures)
	}
	if m.State == "live" && m.LastSync != nil {
		if m.LastSync.Since == 0 {
			s += fmt.Sprintf(", synced with a full copy of %d rows", m.LastSync.Rows)
		} else {
			s += fmt.Sprintf(", caught up by delta: %d rows above seq %d", m.LastSync.Rows, m.LastSync.Since)
		}
	}
	return s
}

// await polls the coordinator's record of counter i until cond holds.
func (r *runner) await(ctx context.Context, i int, timeout time.Duration, cond func(m wire.CounterInfo, ok bool) bool) (time.Duration, string, error) {
	begin := time.Now()
	saw, err := poll(ctx, timeout, pollInterval, func(ctx context.Context) (bool, string, error) {
		cs, err := r.api.Counters(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		m, ok := find(cs, r.counter[i], r.token)
		return cond(m, ok), fmt.Sprintf("counter %d %s", i+1, describe(m, ok)), nil
	})
	return time.Since(begin), saw, err
}

// stop stops counters and waits until the coordinator marks each dead.
func (r *runner) stop(ctx context.Context, idx ...int) (string, error) {
	for _, i := range idx {
		if err := r.compose.Stop(ctx, r.counter[i], stopTimeout); err != nil {
			return "", err
		}
	}
	var parts []string
	for _, i := range idx {
		d, saw, err := r.await(ctx, i, stateTimeout, func(m wire.CounterInfo, ok bool) bool { return ok && m.State == "dead" })
		if err != nil {
			return strings.Join(parts, ", "), fmt.Errorf("counter %d not marked dead: %w", i+1, err)
		}
		parts = append(parts, fmt.Sprintf("%s after %.1fs", saw, d.Seconds()))
	}
	return strings.Join(parts, ", "), nil
}

// removed waits until the coordinator no longer lists counter i.
func (r *runner) removed(ctx context.Context, i int) (string, error) {
	d, _, err := r.await(ctx, i, removeTimeout, func(_ wire.CounterInfo, ok bool) bool { return !ok })
	if err != nil {
		return "", fmt.Errorf("counter %d not removed: %w", i+1, err)
	}
	return fmt.Sprintf("counter %d removed %.1fs later", i+1, d.Seconds()), nil
}

// restart starts stopped counters, waits until each is live as a new
// process (an incarnation other than inc's), and checks its own counts.
func (r *runner) restart(ctx context.Context, inc map[int]string, idx ...int) (string, error) {
	for _, i := range idx {
		if err := r.compose.Start(ctx, r.counter[i]); err != nil {
			return "", err
		}
	}
	// Counters started together may each claim the other's data slot: the
	// id a container runs follows the slot it got.
	if err := r.resolveIDs(ctx); err != nil {
		return "", err
	}
	var parts []string
	for _, i := range idx {
		d, saw, err := r.await(ctx, i, stateTimeout, func(m wire.CounterInfo, ok bool) bool {
			return ok && m.State == "live" && m.Incarnation != inc[i]
		})
		if err != nil {
			return strings.Join(parts, ", "), fmt.Errorf("counter %d not live again: %w", i+1, err)
		}
		parts = append(parts, fmt.Sprintf("%s after %.1fs", saw, d.Seconds()))
	}
	// A restarted counter keeps its data: it needs the rounds it missed,
	// never a full copy.
	cs, err := r.api.Counters(ctx)
	if err != nil {
		return strings.Join(parts, ", "), err
	}
	for _, i := range idx {
		if m, ok := find(cs, r.counter[i], r.token); !ok || m.LastSync == nil || m.LastSync.Since == 0 {
			return strings.Join(parts, ", "), fmt.Errorf("counter %d was not caught up by delta: %s", i+1, describe(m, ok))
		}
	}
	d, err := r.direct(ctx, idx...)
	return join(strings.Join(parts, ", "), d), err
}

// direct asks each counter, from inside its container, for its own count
// of every tenant. It waits until the counter has resolved the last round
// the coordinator decided; from then on its counts must equal the model's.
func (r *runner) direct(ctx context.Context, idx ...int) (string, error) {
	cs, err := r.api.Counters(ctx)
	if err != nil {
		return "", err
	}
	target := cs.Last
	var parts []string
	for _, i := range idx {
		var counts []string
		for _, t := range r.model.tenants() {
			var got wire.LocalCountResponse
			saw, err := poll(ctx, catchUpTimeout, pollInterval, func(ctx context.Context) (bool, string, error) {
				out, err := r.compose.Exec(ctx, r.counter[i], counterBinary, "localcount", t)
				if err != nil {
					return false, err.Error(), nil // not ready (409) while syncing, or not running yet
				}
				if err := json.Unmarshal(out, &got); err != nil {
					return false, "", fmt.Errorf("counter %d: decode %q: %w", i+1, out, err)
				}
				return got.Last.Seq >= target.Seq, fmt.Sprintf("at round %s, coordinator at %s", got.Last, target), nil
			})
			if err != nil {
				return strings.Join(parts, "; "), fmt.Errorf("counter %d did not catch up: %w", i+1, err)
			}
			if want := r.model.count(t); got.Count != want {
				return strings.Join(parts, "; "), fmt.Errorf("counter %d, asked directly %s, counts %s=%d, want %d",
					i+1, saw, t, got.Count, want)
			}
			counts = append(counts, fmt.Sprintf("%s=%d", t, got.Count))
		}
		parts = append(parts, fmt.Sprintf("counter %d directly: %s", i+1, strings.Join(counts, " ")))
	}
	return strings.Join(parts, "; "), nil
}

// report prints what helps to understand a failure: the coordinator's view
// and the last lines of every container's logs.
func (r *runner) report(ctx context.Context, failure error) {
	var v *Violation
	if errors.As(failure, &v) {
		fmt.Fprintf(r.out, "\nFAILED at %s\n  expected: %s\n  saw:      %s\n", v.Step, v.Expect, v.Saw)
	} else {
		fmt.Fprintf(r.out, "\nFAILED: %v\n", failure)
	}
	fmt.Fprintf(r.out, "  acknowledged writes so far: %s\n", r.model)
	if cs, err := r.api.Counters(ctx); err == nil {
		js, _ := json.MarshalIndent(cs, "", "  ")
		fmt.Fprintf(r.out, "\n--- coordinator's view (GET /counters) ---\n%s\n", js)
	}
	logs, err := r.compose.Logs(ctx, logLines)
	if err != nil {
		fmt.Fprintf(r.out, "\n(no logs: %v)\n", err)
		return
	}
	fmt.Fprintf(r.out, "\n--- last %d lines of the logs ---\n%s\n", logLines, logs)
}

// cleanup removes the cluster, also after ctx ended (Ctrl-C).
func (r *runner) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := r.compose.Down(ctx); err != nil {
		r.logf("cleanup: %v", err)
		return
	}
	r.logf("cleanup: project %s removed", r.compose.Project)
}
