package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Config is the coordinator's configuration, loaded from the environment by main.
type Config struct {
	// HTTPPort serves the public API, to clients.
	HTTPPort int `envconfig:"HTTP_PORT" default:"8080"`
	// InternalPort serves the internal API, to counters only.
	InternalPort int `envconfig:"INTERNAL_PORT" default:"8081"`
	// ClusterToken authenticates every internal call, both ways.
	ClusterToken string `envconfig:"CLUSTER_TOKEN"`
	// ClusterInsecure allows running without a token.
	ClusterInsecure bool `envconfig:"CLUSTER_INSECURE" default:"false"`
	// HealthInterval is the period of the health checks of the counters.
	HealthInterval time.Duration `envconfig:"HEALTH_INTERVAL" default:"10s"`
	// RecoveryTries is how many further failed checks remove a dead counter.
	RecoveryTries int `envconfig:"RECOVERY_TRIES" default:"4"`
	// RequestTimeout bounds one client request, end to end.
	RequestTimeout time.Duration `envconfig:"REQUEST_TIMEOUT" default:"10s"`
	// CounterTimeout bounds each call to a counter (prepare, commit, read, health check, join).
	CounterTimeout time.Duration `envconfig:"COUNTER_TIMEOUT" default:"2s"`
	// SyncTimeout bounds bringing one counter up to date, snapshot included.
	SyncTimeout time.Duration `envconfig:"SYNC_TIMEOUT" default:"5m"`
	// HTTPTimeout bounds reading a request (body included) on both
	// listeners, and writing an answer on the internal one.
	HTTPTimeout time.Duration `envconfig:"HTTP_TIMEOUT" default:"30s"`
	// MaxBodyBytes bounds one POST /items body.
	MaxBodyBytes int64 `envconfig:"MAX_BODY_BYTES" default:"4194304"`
	// MaxItemsPerRequest bounds the items of one POST /items.
	MaxItemsPerRequest int `envconfig:"MAX_ITEMS_PER_REQUEST" default:"10000"`
	// MaxInflightRequests bounds the public requests served at once.
	MaxInflightRequests int `envconfig:"MAX_INFLIGHT_REQUESTS" default:"1024"`
	// MaxInflightBytes bounds the bytes of POST /items bodies being read,
	// and, apart, the bytes of encoded batches the committer holds.
	MaxInflightBytes int64 `envconfig:"MAX_INFLIGHT_BYTES" default:"268435456"`
	// MaxHeaderBytes bounds a request's headers on both listeners.
	MaxHeaderBytes int64 `envconfig:"MAX_HEADER_BYTES" default:"16384"`
	// MaxConnections bounds the open connections of each listener.
	MaxConnections int `envconfig:"MAX_CONNECTIONS" default:"4096"`
	// MaxQueuedRequests bounds the writes waiting for a round.
	MaxQueuedRequests int `envconfig:"MAX_QUEUED_REQUESTS" default:"1024"`
	// MaxRoundBytes bounds the encoded prepare of one round; the counters
	// refuse larger ones, so both read the same variable.
	MaxRoundBytes int64 `envconfig:"MAX_ROUND_BYTES" default:"16777216"`
	// MaxCounters bounds the registered counters.
	MaxCounters int `envconfig:"MAX_COUNTERS" default:"64"`
	// MinLiveCounters is how many live counters must commit a write before it is acknowledged.
	MinLiveCounters int `envconfig:"MIN_LIVE_COUNTERS" default:"1"`
	// MaxBatchItems caps the items of concurrent requests merged into one round.
	MaxBatchItems int `envconfig:"MAX_BATCH_ITEMS" default:"10000"`
	// RecoveryGrace is how long a starting coordinator collects counters'
	// reports before it resumes the commit order.
	RecoveryGrace time.Duration `envconfig:"RECOVERY_GRACE" default:"5s"`
	// DataDir holds the coordinator's small state file (which counters hold
	// the data). Empty: none, and a restart relies on RecoveryGrace alone.
	DataDir         string        `envconfig:"DATA_DIR"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
}

// Level is the parsed LOG_LEVEL.
func (c Config) Level() (slog.Level, error) { return httpserver.ParseLevel(c.LogLevel) }

// Validate checks the configuration's meaning and returns every problem.
func (c Config) Validate() error {
	var errs []error
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("HTTP_PORT %d is not a port", c.HTTPPort))
	}
	if c.InternalPort < 0 || c.InternalPort > 65535 {
		errs = append(errs, fmt.Errorf("INTERNAL_PORT %d is not a port", c.InternalPort))
	}
	if c.InternalPort == c.HTTPPort && c.HTTPPort != 0 {
		errs = append(errs, fmt.Errorf("INTERNAL_PORT must differ from HTTP_PORT (%d): internal routes never share the public port", c.HTTPPort))
	}
	if err := httpserver.CheckClusterToken(c.ClusterToken, c.ClusterInsecure); err != nil {
		errs = append(errs, err)
	}
	d := httpserver.Named[time.Duration]
	errs = append(errs, httpserver.AtLeast(time.Nanosecond, d("HEALTH_INTERVAL", c.HealthInterval), d("REQUEST_TIMEOUT", c.RequestTimeout),
		d("COUNTER_TIMEOUT", c.CounterTimeout), d("SYNC_TIMEOUT", c.SyncTimeout), d("SHUTDOWN_TIMEOUT", c.ShutdownTimeout),
		d("HTTP_TIMEOUT", c.HTTPTimeout))...)
	if c.RecoveryGrace < 0 {
		errs = append(errs, fmt.Errorf("RECOVERY_GRACE must not be negative, got %s", c.RecoveryGrace))
	}
	if c.RecoveryTries < 0 {
		errs = append(errs, fmt.Errorf("RECOVERY_TRIES must not be negative, got %d", c.RecoveryTries))
	}
	n := httpserver.Named[int64]
	errs = append(errs, httpserver.AtLeast(1, n("MAX_BODY_BYTES", c.MaxBodyBytes), n("MAX_ITEMS_PER_REQUEST", int64(c.MaxItemsPerRequest)),
		n("MAX_INFLIGHT_REQUESTS", int64(c.MaxInflightRequests)), n("MAX_CONNECTIONS", int64(c.MaxConnections)),
		n("MAX_QUEUED_REQUESTS", int64(c.MaxQueuedRequests)), n("MAX_COUNTERS", int64(c.MaxCounters)),
		n("MIN_LIVE_COUNTERS", int64(c.MinLiveCounters)), n("MAX_BATCH_ITEMS", int64(c.MaxBatchItems)))...)
	if c.MaxHeaderBytes < 4<<10 {
		// The longest legitimate line is a path with an escaped tenant (~3 KiB).
		errs = append(errs, fmt.Errorf("MAX_HEADER_BYTES must be at least 4096, got %d", c.MaxHeaderBytes))
	}
	if c.MaxInflightBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("MAX_INFLIGHT_BYTES (%d) must be at least MAX_BODY_BYTES (%d)", c.MaxInflightBytes, c.MaxBodyBytes))
	}
	if c.MaxInflightBytes < c.MaxRoundBytes {
		errs = append(errs, fmt.Errorf("MAX_INFLIGHT_BYTES (%d) must be at least MAX_ROUND_BYTES (%d)", c.MaxInflightBytes, c.MaxRoundBytes))
	}
	if c.MaxCounters > wire.MaxView {
		errs = append(errs, fmt.Errorf("MAX_COUNTERS must be at most %d, got %d", wire.MaxView, c.MaxCounters))
	}
	if min := int64(wire.PrepareOverhead(c.MaxCounters)) + 64<<10; c.MaxRoundBytes < min {
		errs = append(errs, fmt.Errorf("MAX_ROUND_BYTES must be at least %d for MAX_COUNTERS=%d, got %d", min, c.MaxCounters, c.MaxRoundBytes))
	}

	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
