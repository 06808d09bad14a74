package coordinator_test

import (
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/coordinator"
	"github.com/distributed-counter/distributed-counter/internal/counter"
)

func TestConfig_DefaultsNeedATokenOrAnExplicitInsecureMode(t *testing.T) {
	t.Setenv("CLUSTER_TOKEN", "")
	var cc coordinator.Config
	require.NoError(t, envconfig.Process("", &cc))
	assert.ErrorContains(t, cc.Validate(), "CLUSTER_TOKEN is not set")
	var kc counter.Config
	require.NoError(t, envconfig.Process("", &kc))
	assert.ErrorContains(t, kc.WithDefaults("host").Validate(), "CLUSTER_TOKEN is not set")

	t.Setenv("CLUSTER_INSECURE", "true")
	require.NoError(t, envconfig.Process("", &cc))
	assert.NoError(t, cc.Validate(), "insecure, as asked explicitly")
}

func TestConfig_DefaultsAreValid(t *testing.T) {
	t.Setenv("CLUSTER_TOKEN", "0123456789abcdef0123456789abcdef")
	var cc coordinator.Config
	require.NoError(t, envconfig.Process("", &cc))
	assert.NoError(t, cc.Validate())
	assert.Equal(t, 10*time.Second, cc.HealthInterval)
	assert.Equal(t, 4, cc.RecoveryTries)

	var kc counter.Config
	require.NoError(t, envconfig.Process("", &kc))
	kc = kc.WithDefaults("host")
	assert.NoError(t, kc.Validate())
	assert.Equal(t, "http://host:8080", kc.AdvertiseURL)
	assert.Equal(t, "http://coordinator:8081", kc.CoordinatorURL, "counters register on the internal port")
	assert.NotEqual(t, cc.HTTPPort, cc.InternalPort)
}

func TestConfig_ValidateNamesEveryProblem(t *testing.T) {
	cfg := coordinator.Config{HTTPPort: 70000, InternalPort: 70000, HealthInterval: 0, RequestTimeout: time.Second, CounterTimeout: time.Second,
		SyncTimeout: time.Second, ShutdownTimeout: time.Second, MinLiveCounters: 0, MaxBatchItems: 1, MaxBodyBytes: 1, LogLevel: "loud",
		ClusterToken: "short", MaxCounters: 5000, MaxRoundBytes: 10}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"HTTP_PORT", "INTERNAL_PORT", "HEALTH_INTERVAL", "MIN_LIVE_COUNTERS", "LOG_LEVEL", "CLUSTER_TOKEN",
		"MAX_ITEMS_PER_REQUEST", "MAX_INFLIGHT_REQUESTS", "MAX_QUEUED_REQUESTS", "MAX_CONNECTIONS", "MAX_COUNTERS", "MAX_ROUND_BYTES", "HTTP_TIMEOUT", "MAX_HEADER_BYTES"} {
		assert.Contains(t, err.Error(), want)
	}

	kc := counter.Config{CoordinatorURL: "coordinator:8080", AdvertiseURL: "http://user@x/path?q#f", RegisterInterval: time.Second,
		CoordinatorTimeout: time.Second, SyncTimeout: time.Second, ShutdownTimeout: time.Second, MaxRoundBytes: 1, LogLevel: "info"}
	err = kc.Validate()
	require.Error(t, err)
	for _, want := range []string{"COORDINATOR_URL", "ADVERTISE_URL", "CLUSTER_TOKEN", "HTTP_TIMEOUT", "MAX_CONNECTIONS", "MAX_HEADER_BYTES"} {
		assert.Contains(t, err.Error(), want)
	}
}

// TestEnvDist_ListsEveryVariable keeps .env.dist and the two Config types equal.
func TestEnvDist_ListsEveryVariable(t *testing.T) {
	data, err := os.ReadFile("../../.env.dist")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?\s*([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(string(data), -1) {
		documented[m[1]] = true
	}
	want := map[string]bool{"DEBUG_PORT": true, "COUNTERS": true} // read by docker compose, not by the binaries
	for _, cfg := range []any{coordinator.Config{}, counter.Config{}} {
		typ := reflect.TypeOf(cfg)
		for i := range typ.NumField() {
			if name := typ.Field(i).Tag.Get("envconfig"); name != "" {
				want[name] = true
			}
		}
	}
	for name := range want {
		assert.True(t, documented[name], "%s is missing from .env.dist", name)
	}
	for name := range documented {
		assert.True(t, want[name], ".env.dist documents %s, which nothing reads", name)
	}
}
