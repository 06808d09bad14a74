package counter

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

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
	// AdvertiseURL is the address the coordinator uses to reach this
	// counter now. Empty means http://<hostname>:<HTTP_PORT>. The counter's
	// identity is not its address: it lives in its data directory.
	AdvertiseURL string `envconfig:"ADVERTISE_URL"`
	// DataDir holds the counters' data: each counter claims the first of
	// DataSlots slot directories (DataDir/counter-<k>) that no other
	// process holds, with a lock held for its life, so counters that share
	// one volume never share data.
	DataDir   string `envconfig:"DATA_DIR" default:"/data"`
	DataSlots int    `envconfig:"DATA_SLOTS" default:"64"`
	// DataFsync makes each committed round durable (fsync) before it is
	// acknowledged. false is for measuring what durability costs only: an
	// acknowledged write may then be lost when the host stops.
	DataFsync bool `envconfig:"DATA_FSYNC" default:"true"`
	// FS is the file system the data lives on: the operating system's when
	// nil; tests give an in-memory one that can lose unsynced writes.
	FS vfs.FS `ignored:"true"`
	// NewID is the identity given to a new data directory; empty means a
	// random one. Tests name their counters with it.
	NewID string `ignored:"true"`
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
	errs = append(errs, httpserver.AtLeast(1, n("MAX_CONNECTIONS", int64(c.MaxConnections)), n("MAX_ROUND_BYTES", c.MaxRoundBytes),
		n("DATA_SLOTS", int64(c.DataSlots)))...)
	if c.DataDir == "" {
		errs = append(errs, errors.New("DATA_DIR must not be empty"))
	}
	errs = append(errs, httpserver.AtLeast(4<<10, n("MAX_HEADER_BYTES", c.MaxHeaderBytes))...)
	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
