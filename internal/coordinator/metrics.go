package coordinator

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/membership"
	"github.com/distributed-counter/distributed-counter/internal/twopc"
)

// metrics is what the coordinator measures, for /metrics and the status
// page. No series has a tenant, an id or an address as a label.
type metrics struct {
	httpserver.Telemetry

	rounds        *prometheus.CounterVec
	roundItems    prometheus.Histogram
	roundRequests prometheus.Histogram
	roundPhase    *prometheus.HistogramVec
	disagreements prometheus.Counter
	reads         *prometheus.CounterVec
	// The two series of reads, resolved once: a read is on the hot path.
	readsFromCache, readsFromCounter prometheus.Counter
	syncs                            *prometheus.CounterVec
	syncDuration                     prometheus.Histogram
	syncRows                         prometheus.Counter
	probeFailures                    prometheus.Counter

	// Totals the status page samples into rates (history).
	writes, items, readsTotal, roundsTotal, roundItemsTotal atomic.Int64
	history                                                 history
}

// sizeBuckets are powers of 4 from 1 to 64 Ki, for items and requests per round.
var sizeBuckets = prometheus.ExponentialBuckets(1, 4, 9)

func newMetrics(svc *Service) *metrics {
	m := &metrics{
		Telemetry: httpserver.NewTelemetry(),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dc_rounds_total",
			Help: "Two-phase commit rounds by outcome: committed, aborted (nothing applied), unknown (decided commit, but too few live counters acknowledged it or its holders could not be recorded), skipped (never prepared: too few live counters, or too large).",
		}, []string{"outcome"}),
		roundItems: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dc_round_items", Help: "Items per prepared round of client writes (barriers left out).", Buckets: sizeBuckets,
		}),
		roundRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dc_round_requests", Help: "Client requests merged into each prepared round (group commit).", Buckets: sizeBuckets,
		}),
		roundPhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dc_round_phase_duration_seconds",
			Help:    "Duration of each phase of a round (prepare: until every vote; commit: until every acknowledgement).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"phase"}),
		disagreements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dc_vote_disagreements_total",
			Help: "Rounds decided commit whose live counters reported different numbers of new ids: their replicas differ. Alert on any.",
		}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dc_reads_total",
			Help: "Count reads answered, by where from: cache (the coordinator's count cache) or counter (a fenced read of a live counter).",
		}, []string{"source"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dc_syncs_total", Help: "Syncs of counters by result (ok, failed).",
		}, []string{"result"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dc_sync_duration_seconds", Help: "Duration of syncs, from join to live or failure.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
		}),
		syncRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dc_sync_rows_total", Help: "Rows sent to counters by syncs (snapshots and replayed rounds).",
		}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dc_health_check_failures_total", Help: "Failed health checks of counters.",
		}),
	}
	m.Registry.MustRegister(m.rounds, m.roundItems, m.roundRequests, m.roundPhase, m.disagreements, m.reads,
		m.syncs, m.syncDuration, m.syncRows, m.probeFailures)
	for _, o := range []string{twopc.OutcomeCommitted, twopc.OutcomeAborted, twopc.OutcomeUnknown, twopc.OutcomeSkipped} {
		m.rounds.WithLabelValues(o)
	}
	m.readsFromCache = m.reads.WithLabelValues("cache")
	m.readsFromCounter = m.reads.WithLabelValues("counter")
	m.syncs.WithLabelValues("ok")
	m.syncs.WithLabelValues("failed")

	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dc_writes_total", Help: "POST /items requests acknowledged (committed on enough live counters).",
		}, func() float64 { return float64(m.writes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dc_items_total", Help: "Items in acknowledged POST /items requests (repeats included).",
		}, func() float64 { return float64(m.items.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dc_committer_queue_depth", Help: "Write requests waiting for a round.",
		}, func() float64 { return float64(svc.committer.Queued()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dc_epoch", Help: "The coordinator's epoch (0 while recovering).",
		}, func() float64 { return float64(svc.committer.Position().Epoch) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dc_last_round", Help: "Seq of the last resolved round.",
		}, func() float64 { return float64(svc.committer.Position().Last.Round.Seq) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dc_committed_round", Help: "Seq of the last round decided commit.",
		}, func() float64 { return float64(svc.committer.Position().Committed.Seq) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dc_stable_round", Help: "The stable watermark: the last round every live counter applied; reads see it.",
		}, func() float64 { return float64(svc.committer.Position().Stable) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dc_recovering", Help: "1 while the coordinator recovers its commit order (it answers 503), else 0.",
		}, func() float64 {
			if svc.isRecovering() {
				return 1
			}
			return 0
		}),
		countersByState{svc.registry},
	)
	return m
}

// Round records what a round did (twopc.Observer).
func (m *metrics) Round(r twopc.RoundReport) {
	m.rounds.WithLabelValues(r.Outcome).Inc()
	if r.Outcome == twopc.OutcomeSkipped {
		return
	}
	if r.Requests > 0 { // a barrier (a join's ordering round) carries no request
		m.roundItems.Observe(float64(r.Items))
		m.roundRequests.Observe(float64(r.Requests))
	}
	m.roundPhase.WithLabelValues("prepare").Observe(r.Prepare.Seconds())
	if r.Commit > 0 {
		m.roundPhase.WithLabelValues("commit").Observe(r.Commit.Seconds())
	}
	if r.Disagreed {
		m.disagreements.Inc()
	}
	if r.Outcome == twopc.OutcomeCommitted && r.Items > 0 {
		m.roundsTotal.Add(1)
		m.roundItemsTotal.Add(int64(r.Items))
	}
}

func (m *metrics) wrote(items int) {
	m.writes.Add(1)
	m.items.Add(int64(items))
}

func (m *metrics) read(fromCache bool) {
	m.readsTotal.Add(1)
	if fromCache {
		m.readsFromCache.Inc()
	} else {
		m.readsFromCounter.Inc()
	}
}

func (m *metrics) synced(d time.Duration, rows int, err error) {
	m.syncDuration.Observe(d.Seconds())
	m.syncRows.Add(float64(rows))
	if err != nil {
		m.syncs.WithLabelValues("failed").Inc()
		return
	}
	m.syncs.WithLabelValues("ok").Inc()
}

// countersByState is the dc_counters gauge: counters known, by state,
// read from the registry at each scrape.
type countersByState struct{ registry *membership.Registry }

var countersDesc = prometheus.NewDesc("dc_counters", "Counters the coordinator knows, by state.", []string{"state"}, nil)

func (c countersByState) Describe(ch chan<- *prometheus.Desc) { ch <- countersDesc }

func (c countersByState) Collect(ch chan<- prometheus.Metric) {
	n := map[membership.State]int{membership.Live: 0, membership.Syncing: 0, membership.Dead: 0}
	for _, m := range c.registry.List() {
		n[m.State]++
	}
	for state, v := range n {
		ch <- prometheus.MustNewConstMetric(countersDesc, prometheus.GaugeValue, float64(v), string(state))
	}
}

// Sample is one point of the status page's charts: rates over the
// interval that ends at At.
type Sample struct {
	At         time.Time
	Writes     float64 // acknowledged POST /items per second
	Items      float64 // their items per second
	Reads      float64 // count reads per second
	RoundItems float64 // mean items per committed round; 0 when none
}

// history keeps the last HistoryLen samples of the totals' rates.
type history struct {
	mu      sync.Mutex
	samples []Sample // oldest first
	last    totals
	lastAt  time.Time
}

type totals struct{ writes, items, reads, rounds, roundItems int64 }

// HistoryLen samples of SampleInterval: ten minutes.
const (
	SampleInterval = 5 * time.Second
	HistoryLen     = 120
)

// sample adds the rates since the previous sample (the first call only
// takes the baseline).
func (m *metrics) sample(now time.Time) {
	t := totals{m.writes.Load(), m.items.Load(), m.readsTotal.Load(), m.roundsTotal.Load(), m.roundItemsTotal.Load()}
	h := &m.history
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastAt.IsZero() {
		secs := now.Sub(h.lastAt).Seconds()
		if secs > 0 {
			s := Sample{At: now,
				Writes: float64(t.writes-h.last.writes) / secs,
				Items:  float64(t.items-h.last.items) / secs,
				Reads:  float64(t.reads-h.last.reads) / secs,
			}
			if r := t.rounds - h.last.rounds; r > 0 {
				s.RoundItems = float64(t.roundItems-h.last.roundItems) / float64(r)
			}
			if len(h.samples) == HistoryLen {
				h.samples = append(h.samples[:0], h.samples[1:]...)
			}
			h.samples = append(h.samples, s)
		}
	}
	h.last, h.lastAt = t, now
}

// run samples the rates every SampleInterval until ctx ends.
func (m *metrics) run(ctx context.Context) {
	t := time.NewTicker(SampleInterval)
	defer t.Stop()
	m.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.sample(now)
		}
	}
}

// samples returns the history, oldest first.
func (m *metrics) samples() []Sample {
	m.history.mu.Lock()
	defer m.history.mu.Unlock()
	return append([]Sample(nil), m.history.samples...)
}
