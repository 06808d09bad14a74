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
	httpserver.Telemetry
	sync prometheus.Histogram
}

// NewMetrics returns the counter's metrics; Observe gives the ledger's
// synced writes to it, and Bind its service and storage engine.
func NewMetrics() *Metrics {
	m := &Metrics{
		Telemetry: httpserver.NewTelemetry(),
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dc_storage_sync_duration_seconds",
			Help:    "Duration of each synced write of the ledger (a committed round, a join, a fence), fsync included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	m.Registry.MustRegister(m.sync)
	return m
}

// ObserveSync records one synced write (ledger.Options.ObserveSync).
func (m *Metrics) ObserveSync(d time.Duration) { m.sync.Observe(d.Seconds()) }

// Bind registers the series read at each scrape: the counter's position
// from svc, and the storage engine's size and cache from l, each read once
// per scrape.
func (m *Metrics) Bind(svc *Service, l *ledger.Ledger) {
	m.Registry.MustRegister(scraped{svc: svc, ledger: l})
}

// scraped collects the series read at each scrape.
type scraped struct {
	svc    *Service
	ledger *ledger.Ledger
}

var (
	itemsDesc      = prometheus.NewDesc("dc_counter_items", "Distinct ids held, over every tenant.", nil, nil)
	tenantsDesc    = prometheus.NewDesc("dc_counter_tenants", "Tenants held.", nil, nil)
	lastDesc       = prometheus.NewDesc("dc_counter_last_round", "Seq of the last round resolved here.", nil, nil)
	stableDesc     = prometheus.NewDesc("dc_counter_stable_round", "The highest stable watermark the coordinator announced here.", nil, nil)
	readyDesc      = prometheus.NewDesc("dc_counter_ready", "1 when the counter holds a complete copy (ready), 0 while it syncs or is new.", nil, nil)
	diskDesc       = prometheus.NewDesc("dc_storage_disk_bytes", "Bytes the storage engine uses on disk (tables and log).", nil, nil)
	cacheDesc      = prometheus.NewDesc("dc_storage_block_cache_bytes", "Bytes of blocks held in the storage engine's block cache.", nil, nil)
	cacheHitsDesc  = prometheus.NewDesc("dc_storage_block_cache_hits_total", "Block cache hits.", nil, nil)
	cacheMissDesc  = prometheus.NewDesc("dc_storage_block_cache_misses_total", "Block cache misses (blocks read from the files).", nil, nil)
	scrapedMetrics = []*prometheus.Desc{itemsDesc, tenantsDesc, lastDesc, stableDesc, readyDesc, diskDesc, cacheDesc, cacheHitsDesc, cacheMissDesc}
)

func (s scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range scrapedMetrics {
		ch <- d
	}
}

func (s scraped) Collect(ch chan<- prometheus.Metric) {
	st, e := s.svc.Status(), s.ledger.Engine()
	ready := 0.0
	if st.Mode == wire.ModeReady {
		ready = 1
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(itemsDesc, float64(st.Items))
	gauge(tenantsDesc, float64(st.Tenants))
	gauge(lastDesc, float64(st.Last.Seq))
	gauge(stableDesc, float64(st.Stable))
	gauge(readyDesc, ready)
	gauge(diskDesc, float64(e.DiskBytes))
	gauge(cacheDesc, float64(e.CacheBytes))
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(e.CacheHits))
	ch <- prometheus.MustNewConstMetric(cacheMissDesc, prometheus.CounterValue, float64(e.CacheMisses))
}
