package simulate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// model is what the cluster must hold after the writes acknowledged so far:
// the distinct ids of every tenant.
type model struct {
	ids map[string]map[string]struct{}
}

func newModel() *model { return &model{ids: make(map[string]map[string]struct{})} }

// add records acknowledged items; an id seen before counts once.
func (m *model) add(items []wire.Item) {
	for _, it := range items {
		if m.ids[it.Tenant] == nil {
			m.ids[it.Tenant] = make(map[string]struct{})
		}
		m.ids[it.Tenant][it.ID] = struct{}{}
	}
}

// count is a tenant's expected count.
func (m *model) count(tenant string) int64 { return int64(len(m.ids[tenant])) }

// tenants returns every tenant written to, sorted.
func (m *model) tenants() []string { return slices.Sorted(maps.Keys(m.ids)) }

// String lists the expected counts: "alpha=5 beta=3".
func (m *model) String() string {
	parts := make([]string, 0, len(m.ids))
	for _, t := range m.tenants() {
		parts = append(parts, fmt.Sprintf("%s=%d", t, m.count(t)))
	}
	return strings.Join(parts, " ")
}

// items returns the items tenant-from ... tenant-to of a tenant.
func items(tenant string, from, to int) []wire.Item {
	var out []wire.Item
	for i := from; i <= to; i++ {
		out = append(out, wire.Item{ID: fmt.Sprintf("%s-%d", tenant, i), Tenant: tenant})
	}
	return out
}
