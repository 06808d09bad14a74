package simulate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseContainers_OrdersByReplicaNumber(t *testing.T) {
	t.Parallel()
	out := "c3full|/dcsim_counter_3|3|c3short\n" +
		"c1full|/dcsim_counter_1|1|c1short\n" +
		"\n" +
		"c2full|/dcsim-counter-2|2|c2short\n"

	cs, err := parseContainers(out)

	require.NoError(t, err)
	assert.Equal(t, []Container{
		{ID: "c1full", Name: "dcsim_counter_1", Number: 1, Hostname: "c1short"},
		{ID: "c2full", Name: "dcsim-counter-2", Number: 2, Hostname: "c2short"},
		{ID: "c3full", Name: "dcsim_counter_3", Number: 3, Hostname: "c3short"},
	}, cs)
}

func TestParseContainers_RejectsMalformedLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		out  string
	}{
		{"missing field", "id|/name|1\n"},
		{"no replica number", "id|/name||host\n"},
		{"no hostname", "id|/name|1|\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseContainers(tt.out)
			assert.Error(t, err)
		})
	}
}

func TestMergeLogs_OrdersContainersByTimestamp(t *testing.T) {
	t.Parallel()
	// Compose prints each container's lines together; timestamps decide.
	out := "Attaching to dcsim_counter_1, dcsim_coordinator_1\n" +
		"dcsim_counter_1      | 2026-11-25T20:30:11.5Z counter b\n" +
		"dcsim_counter_1      | 2026-11-25T20:30:13.000000001Z counter d\n" +
		"dcsim_coordinator_1  | 2026-11-25T20:30:11.25Z coordinator a\n" +
		"dcsim_coordinator_1  | 2026-11-25T20:30:12.75Z coordinator c\n"

	got := mergeLogs(out)

	assert.Equal(t, "Attaching to dcsim_counter_1, dcsim_coordinator_1\n"+
		"dcsim_coordinator_1  | 2026-11-25T20:30:11.25Z coordinator a\n"+
		"dcsim_counter_1      | 2026-11-25T20:30:11.5Z counter b\n"+
		"dcsim_coordinator_1  | 2026-11-25T20:30:12.75Z coordinator c\n"+
		"dcsim_counter_1      | 2026-11-25T20:30:13.000000001Z counter d\n", got)
}

func TestLastLines_KeepsTheEnd(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "c\nd\n", lastLines("a\nb\nc\nd\n", 2))
	assert.Equal(t, "a\nb\n", lastLines("a\nb\n", 5))
}
