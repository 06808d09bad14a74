package clustertest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// scrape reads url's metrics (with the token when it is not empty) and
// parses them: the exposition must parse.
func scrape(t *testing.T, c *clustertest.Cluster, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	resp := send(t, c, http.MethodGet, url+"/metrics", token, "")
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(resp.Body))
	require.NoError(t, err, "the exposition parses")
	return families
}

// value is the sum of the series of family name whose labels include
// every pair of labels (name, value, name, value...): a counter's or
// gauge's value, a histogram's count.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// labelValues lists every label value of every series.
func labelValues(families map[string]*dto.MetricFamily) []string {
	var out []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

// TestCluster_MetricsMoveWithTheWork: the coordinator's /metrics (public
// and internal port) and every counter's (behind the token) parse, their
// key series move when the cluster adds and reads, and a stopped counter
// shows as dead with failed health checks. No label carries a tenant, an
// id or an address.
func TestCluster_MetricsMoveWithTheWork(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{})
	const tenant, writes = "metrics-tenant-secret", 20
	for i := range writes {
		mustAdd(t, c, items(tenant, fmt.Sprintf("id-%d", i), fmt.Sprintf("id-%d-b", i))...)
	}
	for range 5 {
		assert.Equal(t, int64(2*writes), mustCount(t, c, tenant))
	}

	pub := scrape(t, c, c.Coordinator.URL, "")
	assert.Equal(t, float64(writes), value(pub, "dc_writes_total"))
	assert.Equal(t, float64(2*writes), value(pub, "dc_items_total"))
	assert.GreaterOrEqual(t, value(pub, "dc_rounds_total", "outcome", "committed"), 1.0)
	assert.Equal(t, 0.0, value(pub, "dc_rounds_total", "outcome", "aborted"))
	assert.GreaterOrEqual(t, value(pub, "dc_round_items"), 1.0, "round sizes observed")
	assert.GreaterOrEqual(t, value(pub, "dc_round_phase_duration_seconds", "phase", "prepare"), 1.0)
	assert.GreaterOrEqual(t, value(pub, "dc_round_phase_duration_seconds", "phase", "commit"), 1.0)
	assert.Equal(t, 5.0, value(pub, "dc_reads_total"), "every read counted once, from the cache or a counter")
	assert.Equal(t, 3.0, value(pub, "dc_counters", "state", "live"))
	assert.Equal(t, 0.0, value(pub, "dc_counters", "state", "dead"))
	assert.Equal(t, 0.0, value(pub, "dc_vote_disagreements_total"))
	assert.GreaterOrEqual(t, value(pub, "dc_syncs_total", "result", "ok"), 3.0, "each counter synced at start")
	assert.Equal(t, float64(writes), value(pub, "http_requests_total", "listener", "public", "route", "/items", "code", "200"))
	assert.Equal(t, 5.0, value(pub, "http_requests_total", "route", "/items/{tenantID}/count", "code", "200"))
	assert.Positive(t, value(pub, "go_goroutines"), "Go runtime collector")
	assert.Positive(t, value(pub, "process_start_time_seconds"), "process collector")

	internal := scrape(t, c, c.Coordinator.InternalURL, c.Token)
	assert.Equal(t, float64(writes), value(internal, "dc_writes_total"), "the same registry on the internal port")

	for _, n := range c.Counters {
		m := scrape(t, c, n.URL, c.Token)
		assert.Equal(t, float64(2*writes), value(m, "dc_counter_items"), n.Name)
		assert.Equal(t, 1.0, value(m, "dc_counter_ready"), n.Name)
		assert.GreaterOrEqual(t, value(m, "dc_storage_sync_duration_seconds"), float64(1), "%s: synced writes timed", n.Name)
		assert.Positive(t, value(m, "dc_storage_disk_bytes"), n.Name)
		assert.GreaterOrEqual(t, value(m, "http_requests_total", "route", "/internal/prepare", "code", "200"), 1.0, n.Name)
		for _, v := range labelValues(m) {
			assert.NotContains(t, v, tenant)
		}
	}
	for _, v := range labelValues(pub) {
		assert.NotContains(t, v, tenant, "no tenant in a label")
		assert.NotContains(t, v, "127.0.0.1", "no address in a label")
		for _, n := range c.Counters {
			assert.NotContains(t, v, n.ID(), "no counter id in a label")
		}
	}

	// A counter's metrics are behind the token like its other routes.
	assert.Equal(t, http.StatusUnauthorized, send(t, c, http.MethodGet, c.Counters[0].URL+"/metrics", "", "").Status)

	c.Counters[2].Stop()
	require.Eventually(t, func() bool {
		m := scrape(t, c, c.Coordinator.URL, "")
		return value(m, "dc_counters", "state", "dead") == 1 && value(m, "dc_health_check_failures_total") >= 1
	}, waitFor, tick, "a stopped counter shows as dead, with failed health checks")
}

// status reads GET /status.json.
func status(ctx context.Context, c *clustertest.Cluster) (wire.StatusResponse, []byte, error) {
	var st wire.StatusResponse
	resp, err := c.Do(ctx, http.MethodGet, "/status.json", nil)
	if err != nil {
		return st, nil, err
	}
	if resp.Status != http.StatusOK {
		return st, resp.Body, fmt.Errorf("GET /status.json: %d", resp.Status)
	}
	return st, resp.Body, resp.Decode(&st)
}

// TestCluster_StatusShowsTheClusterAndNothingInternal: GET /status.json
// shows every counter with its state and lag, and the membership events of
// a counter that died and came back; it names no address, counter id or
// token. (The rates are sampled every 5 s: TestMetrics_SamplesAreRates.)
func TestCluster_StatusShowsTheClusterAndNothingInternal(t *testing.T) {
	t.Parallel()
	c := startLive(t, clustertest.Options{RecoveryTries: 10_000}) // a dead counter stays known
	mustAdd(t, c, items("acme", "a", "b")...)

	resp, err := c.Do(t.Context(), http.MethodGet, "/status", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.Contains(t, string(resp.Body), "<title>distributed-counter status</title>")

	st, _, err := status(t.Context(), c)
	require.NoError(t, err)
	assert.Equal(t, "serving", st.Phase)
	require.Len(t, st.Counters, 3)
	for _, sc := range st.Counters {
		assert.Equal(t, "live", sc.State)
		assert.Empty(t, sc.Error)
	}
	assert.Positive(t, st.Stable)
	assert.EqualValues(t, 5, st.Interval)

	victim := c.Counters[1]
	victimName := name(t, c, victim)
	victim.Stop()
	var body []byte
	require.Eventually(t, func() bool {
		st, body, err = status(t.Context(), c)
		return err == nil && countState(st, "dead") == 1
	}, waitFor, tick, "the stopped counter shows as dead")
	for _, sc := range st.Counters {
		if sc.State == "dead" {
			assert.NotEmpty(t, sc.Error, "a dead counter shows its error's kind")
		}
	}
	mustAdd(t, c, items("acme", "c")...)
	victim.Start(t)
	require.Eventually(t, func() bool {
		st, body, err = status(t.Context(), c)
		return err == nil && countState(st, "live") == 3 && cameBack(st, victimName)
	}, waitFor, tick, "it comes back live, and the events say so: dead, then live")
	for _, sc := range st.Counters {
		assert.Zero(t, sc.Lag, "a live counter is not behind the stable watermark")
	}
	for _, secret := range []string{c.Token, "127.0.0.1", "localhost", "http://"} {
		assert.NotContains(t, string(body), secret, "the status names nothing internal")
	}
	for _, id := range ids(c) {
		assert.NotContains(t, string(body), `"`+id+`"`, "no counter id")
	}
}

func countState(st wire.StatusResponse, state string) int {
	n := 0
	for _, sc := range st.Counters {
		if sc.State == state {
			n++
		}
	}
	return n
}

// cameBack reports whether the events, newest first, show counter going
// dead and then live again.
func cameBack(st wire.StatusResponse, counter string) bool {
	live := false
	for _, e := range st.Events {
		switch {
		case e.Counter != counter:
		case e.Kind == "live":
			live = true
		case e.Kind == "dead" && live:
			return true
		}
	}
	return false
}

// name is the public name of a counter, as GET /counters shows it.
func name(t *testing.T, c *clustertest.Cluster, n *clustertest.Node) string {
	t.Helper()
	cr, err := c.Members(t.Context())
	require.NoError(t, err)
	for _, m := range cr.Counters {
		if m.ID == n.ID() {
			return m.Name
		}
	}
	t.Fatalf("counter %s unknown", n.Name)
	return ""
}

func ids(c *clustertest.Cluster) []string {
	var out []string
	for _, n := range c.Counters {
		out = append(out, n.ID())
	}
	return out
}
