package counter

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Metrics is what a counter measures, served at /metrics on its port
// (behind the cluster token like every other route). No series has a
// tenant or an id as a label.
type Metrics struct {
	reg  *prometheus.Registry
	http *httpserver.HTTPMetrics
	sync prometheus.Histogram
}

// NewMetrics returns the counter's metrics; Observe gives the ledger's
// synced writes to it, and Bind its service and storage engine.
func NewMetrics() *Metrics {
	reg := httpserver.NewRegistry()
	m := &Metrics{
		reg:  reg,
		http: httpserver.NewHTTPMetrics(reg),
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dc_storage_sync_duration_seconds",
			Help:    "Duration of each synced write of the ledger (a committed round, a join, a fence), fsync included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	reg.MustRegister(m.sync)
	return m
}

// ObserveSync records one synced write (ledger.Options.ObserveSync).
func (m *Metrics) ObserveSync(d time.Duration) { m.sync.Observe(d.Seconds()) }

// Bind registers the series read at each scrape: the counter's position
// from svc, and the storage engine's size and cache from l.
func (m *Metrics) Bind(svc *Service, l *ledger.Ledger) {
	status := func(f func(wire.Status) float64) func() float64 {
		return func() float64 { return f(svc.Status()) }
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_counter_items", Help: "Distinct ids held, over every tenant."},
			status(func(s wire.Status) float64 { return float64(s.Items) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_counter_tenants", Help: "Tenants held."},
			status(func(s wire.Status) float64 { return float64(s.Tenants) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_counter_last_round", Help: "Seq of the last round resolved here."},
			status(func(s wire.Status) float64 { return float64(s.Last.Seq) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_counter_stable_round", Help: "The highest stable watermark the coordinator announced here."},
			status(func(s wire.Status) float64 { return float64(s.Stable) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_counter_ready", Help: "1 when the counter holds a complete copy (ready), 0 while it syncs or is new."},
			status(func(s wire.Status) float64 {
				if s.Mode == wire.ModeReady {
					return 1
				}
				return 0
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_storage_disk_bytes", Help: "Bytes the storage engine uses on disk (tables and log)."},
			func() float64 { return float64(l.Engine().DiskBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dc_storage_block_cache_bytes", Help: "Bytes of blocks held in the storage engine's block cache."},
			func() float64 { return float64(l.Engine().CacheBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dc_storage_block_cache_hits_total", Help: "Block cache hits."},
			func() float64 { return float64(l.Engine().CacheHits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dc_storage_block_cache_misses_total", Help: "Block cache misses (blocks read from the files)."},
			func() float64 { return float64(l.Engine().CacheMisses) }),
	)
}
