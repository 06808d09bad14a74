package simulate

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

func TestModel_CountsDistinctIDsPerTenant(t *testing.T) {
	t.Parallel()
	m := newModel()

	m.add(items("alpha", 1, 5))
	m.add(append(items("alpha", 4, 6), wire.Item{ID: "alpha-1", Tenant: "beta"}))

	assert.Equal(t, int64(6), m.count("alpha"))
	assert.Equal(t, int64(1), m.count("beta"), "the same id in another tenant is another item")
	assert.Equal(t, int64(0), m.count("gamma"))
	assert.Equal(t, []string{"alpha", "beta"}, m.tenants())
	assert.Equal(t, "alpha=6 beta=1", m.String())
}
