package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Telemetry is a service's metrics: its own registry (there is no global
// one), with the Go runtime and process collectors, and the metrics of
// its HTTP requests.
type Telemetry struct {
	Registry *prometheus.Registry
	HTTP     *HTTPMetrics
}

// NewTelemetry returns a service's registry and request metrics.
func NewTelemetry() Telemetry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return Telemetry{Registry: reg, HTTP: newHTTPMetrics(reg)}
}

// Handler serves the registry in the Prometheus exposition format.
func (t Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry, MaxRequestsInFlight: 4})
}

// HTTPMetrics counts the requests of a service's listeners and times them.
// Labels are bounded: the listener, the route pattern (never the path,
// which holds tenant ids), the method and the status code.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newHTTPMetrics registers the request metrics in reg.
func newHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by listener, route pattern, method and status code.",
		}, []string{"listener", "route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time from the request's headers to the end of the handler, by listener and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"listener", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Middleware records the requests of one listener. Use it on a chi router:
// the route pattern is known once the router has served the request.
func (m *HTTPMetrics) Middleware(listener string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(rec, r)
			route := "unmatched"
			if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePattern() != "" {
				route = rctx.RoutePattern()
			}
			method := r.Method
			switch method {
			case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodOptions, http.MethodPatch:
			default:
				method = "other" // a client picks the method: keep the label set bounded
			}
			m.requests.WithLabelValues(listener, route, method, strconv.Itoa(rec.status)).Inc()
			m.duration.WithLabelValues(listener, route).Observe(time.Since(start).Seconds())
		})
	}
}
