package counter

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Config is the counter's configuration, loaded from the environment by main.
type Config struct {
	// HTTPPort is the counter's only listener: the internal API.
	HTTPPort int `envconfig:"HTTP_PORT" default:"8080"`
	// CoordinatorURL is the coordinator's internal API, where the counter registers.
	CoordinatorURL string `envconfig:"COORDINATOR_URL" default:"http://coordinator:8081"`
	// ClusterToken authenticates every internal call, both ways.
	ClusterToken string `envconfig:"CLUSTER_TOKEN"`
	// ClusterInsecure allows running without a token.
	ClusterInsecure bool `envconfig:"CLUSTER_INSECURE" default:"false"`
	// AdvertiseURL is the address the coordinator uses to reach this counter,
	// and its identity. Empty means http://<hostname>:<HTTP_PORT>.
	AdvertiseURL string `envconfig:"ADVERTISE_URL"`
	// RegisterInterval is the period of the registrations that keep the
	// coordinator aware of this counter.
	RegisterInterval time.Duration `envconfig:"REGISTER_INTERVAL" default:"2s"`
	// CoordinatorTimeout bounds each call to the coordinator.
	CoordinatorTimeout time.Duration `envconfig:"COORDINATOR_TIMEOUT" default:"5s"`
	// SyncTimeout bounds a snapshot transfer in or out of this counter.
	SyncTimeout time.Duration `envconfig:"SYNC_TIMEOUT" default:"5m"`
	// MaxRoundBytes bounds the body of one prepare: all items of one round.
	MaxRoundBytes int64 `envconfig:"MAX_ROUND_BYTES" default:"16777216"`
	// HTTPTimeout bounds reading a request and writing its answer, except
	// snapshot streams (SyncTimeout).
	HTTPTimeout time.Duration `envconfig:"HTTP_TIMEOUT" default:"30s"`
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int64 `envconfig:"MAX_HEADER_BYTES" default:"16384"`
	// MaxConnections bounds the open connections of the listener.
	MaxConnections  int           `envconfig:"MAX_CONNECTIONS" default:"4096"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
}

// WithDefaults fills the values that depend on the host.
func (c Config) WithDefaults(hostname string) Config {
	if c.AdvertiseURL == "" {
		c.AdvertiseURL = fmt.Sprintf("http://%s:%d", hostname, c.HTTPPort)
	}
	c.AdvertiseURL = strings.TrimRight(c.AdvertiseURL, "/")
	c.CoordinatorURL = strings.TrimRight(c.CoordinatorURL, "/")
	return c
}

// Level is the parsed LOG_LEVEL.
func (c Config) Level() (slog.Level, error) { return httpserver.ParseLevel(c.LogLevel) }

// Validate checks the configuration's meaning and returns every problem.
func (c Config) Validate() error {
	var errs []error
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("HTTP_PORT %d is not a port", c.HTTPPort))
	}
	for _, u := range []struct{ name, v string }{{"COORDINATOR_URL", c.CoordinatorURL}, {"ADVERTISE_URL", c.AdvertiseURL}} {
		if err := wire.CheckCounterURL(u.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if err := httpserver.CheckClusterToken(c.ClusterToken, c.ClusterInsecure); err != nil {
		errs = append(errs, err)
	}
	d := httpserver.Named[time.Duration]
	errs = append(errs, httpserver.AtLeast(time.Nanosecond, d("REGISTER_INTERVAL", c.RegisterInterval), d("COORDINATOR_TIMEOUT", c.CoordinatorTimeout),
		d("SYNC_TIMEOUT", c.SyncTimeout), d("SHUTDOWN_TIMEOUT", c.ShutdownTimeout), d("HTTP_TIMEOUT", c.HTTPTimeout))...)
	n := httpserver.Named[int64]
	errs = append(errs, httpserver.AtLeast(1, n("MAX_CONNECTIONS", int64(c.MaxConnections)), n("MAX_ROUND_BYTES", c.MaxRoundBytes))...)
	errs = append(errs, httpserver.AtLeast(4<<10, n("MAX_HEADER_BYTES", c.MaxHeaderBytes))...)
	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
