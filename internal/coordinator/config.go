package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

// Config is the coordinator's configuration, loaded from the environment by main.
type Config struct {
	HTTPPort int `envconfig:"HTTP_PORT" default:"8080"`
	// HealthInterval is the period of the health checks of the counters.
	HealthInterval time.Duration `envconfig:"HEALTH_INTERVAL" default:"10s"`
	// RecoveryTries is how many further failed checks remove a dead counter.
	RecoveryTries int `envconfig:"RECOVERY_TRIES" default:"4"`
	// RequestTimeout bounds one client request, end to end.
	RequestTimeout time.Duration `envconfig:"REQUEST_TIMEOUT" default:"10s"`
	// CounterTimeout bounds each call to a counter (prepare, commit, read, health check, join).
	CounterTimeout time.Duration `envconfig:"COUNTER_TIMEOUT" default:"2s"`
	// SyncTimeout bounds bringing one counter up to date, snapshot included.
	SyncTimeout  time.Duration `envconfig:"SYNC_TIMEOUT" default:"5m"`
	MaxBodyBytes int64         `envconfig:"MAX_BODY_BYTES" default:"4194304"`
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
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HEALTH_INTERVAL", c.HealthInterval},
		{"REQUEST_TIMEOUT", c.RequestTimeout},
		{"COUNTER_TIMEOUT", c.CounterTimeout},
		{"SYNC_TIMEOUT", c.SyncTimeout},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	if c.RecoveryGrace < 0 {
		errs = append(errs, fmt.Errorf("RECOVERY_GRACE must not be negative, got %s", c.RecoveryGrace))
	}
	if c.RecoveryTries < 0 {
		errs = append(errs, fmt.Errorf("RECOVERY_TRIES must not be negative, got %d", c.RecoveryTries))
	}
	if c.MinLiveCounters < 1 {
		errs = append(errs, fmt.Errorf("MIN_LIVE_COUNTERS must be at least 1, got %d", c.MinLiveCounters))
	}
	if c.MaxBatchItems < 1 {
		errs = append(errs, fmt.Errorf("MAX_BATCH_ITEMS must be at least 1, got %d", c.MaxBatchItems))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES must be positive, got %d", c.MaxBodyBytes))
	}
	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
