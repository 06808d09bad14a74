package coordinator

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/twopc"
)

// TestMetrics_SamplesAreRates: each sample is the rate of writes, items and
// reads since the previous one, and the mean items of the committed rounds
// with items in between; the history keeps the last HistoryLen.
func TestMetrics_SamplesAreRates(t *testing.T) {
	m := &metrics{}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	m.sample(t0) // the baseline: no sample yet
	assert.Empty(t, m.samples())

	for range 10 {
		m.writes.Add(1)
		m.items.Add(3)
	}
	m.readsTotal.Add(40)
	m.roundsTotal.Add(2)
	m.roundItemsTotal.Add(30)
	m.sample(t0.Add(5 * time.Second))
	got := m.samples()
	require.Len(t, got, 1)
	assert.Equal(t, Sample{At: t0.Add(5 * time.Second), Writes: 2, Items: 6, Reads: 8, RoundItems: 15}, got[0])

	m.sample(t0.Add(10 * time.Second))
	assert.Equal(t, Sample{At: t0.Add(10 * time.Second)}, m.samples()[1], "no work: zero rates, no round size")

	for i := range HistoryLen + 5 {
		m.sample(t0.Add(time.Duration(15+5*i) * time.Second))
	}
	got = m.samples()
	require.Len(t, got, HistoryLen, "bounded")
	assert.True(t, got[0].At.Before(got[len(got)-1].At), "oldest first")
	assert.Equal(t, t0.Add(time.Duration(15+5*(HistoryLen+4))*time.Second), got[len(got)-1].At)
}

// TestMetrics_RoundSizesLeaveBarriersOut: a barrier (no request) counts as
// a round but not in the size histograms, nor in the page's round size.
func TestMetrics_RoundSizesLeaveBarriersOut(t *testing.T) {
	m := newMetrics(&Service{})
	m.Round(twopc.RoundReport{Outcome: twopc.OutcomeCommitted, Prepare: time.Millisecond, Commit: time.Millisecond})
	m.Round(twopc.RoundReport{Outcome: twopc.OutcomeCommitted, Items: 10, Requests: 2, Prepare: time.Millisecond, Commit: time.Millisecond})
	m.Round(twopc.RoundReport{Outcome: twopc.OutcomeSkipped, Items: 5, Requests: 1})
	count := func(h prometheus.Observer) uint64 {
		var d dto.Metric
		require.NoError(t, h.(prometheus.Metric).Write(&d))
		return d.GetHistogram().GetSampleCount()
	}
	assert.Equal(t, uint64(1), count(m.roundItems))
	assert.Equal(t, uint64(1), count(m.roundRequests))
	assert.Equal(t, uint64(2), count(m.roundPhase.WithLabelValues("prepare")), "both prepared rounds timed")
	assert.Equal(t, int64(1), m.roundsTotal.Load())
	assert.Equal(t, int64(10), m.roundItemsTotal.Load())
}
