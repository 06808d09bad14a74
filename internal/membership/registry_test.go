package membership_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/membership"
)

var (
	now     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	errDown = errors.New("connection refused")
)

// liveMember registers id and takes it through a complete sync.
func liveMember(t *testing.T, r *membership.Registry, id string) uint64 {
	t.Helper()
	gen, ok := r.StartSync(id, id+"-inc")
	if !ok { // already syncing this incarnation: restart it
		r.Fail(id)
		gen, ok = r.StartSync(id, id+"-inc")
		require.True(t, ok)
	}
	require.NoError(t, r.Joined(id, gen, 0, true))
	r.RoundDone(1, []string{id})
	m, _ := r.Get(id)
	require.Equal(t, membership.Live, m.State)
	return gen
}

func TestRegistry_SyncingJoinsWritesButNotReads(t *testing.T) {
	r := membership.New(4, 64, time.Now)
	gen, ok := r.StartSync("a", "inc")
	require.True(t, ok)
	_, again := r.StartSync("a", "inc")
	assert.False(t, again, "one sync per incarnation at a time")
	assert.Empty(t, r.WriteSet(), "not in the write set before it joined")

	require.NoError(t, r.Joined("a", gen, 5, false))
	assert.Len(t, r.WriteSet(), 1)
	assert.Empty(t, r.Live(), "no reads before it is live")

	assert.Empty(t, r.RoundDone(6, []string{"a"}), "not promoted before its snapshot is installed")
	require.NoError(t, r.Installed("a", gen))
	assert.Equal(t, []string{"a"}, r.RoundDone(7, []string{"a"}))
	assert.Len(t, r.Live(), 1)
}

func TestRegistry_PromoteAloneOnlyWithoutLiveCounters(t *testing.T) {
	r := membership.New(4, 64, time.Now)
	gen, _ := r.StartSync("a", "inc")
	require.NoError(t, r.Joined("a", gen, 3, true))
	assert.False(t, r.PromoteAlone("a", gen, 4), "it does not hold the last committed round")
	assert.True(t, r.PromoteAlone("a", gen, 3))

	gen2, _ := r.StartSync("b", "inc")
	require.NoError(t, r.Joined("b", gen2, 3, true))
	assert.False(t, r.PromoteAlone("b", gen2, 3), "a is live: b must commit a round first")
}

func TestRegistry_HealthChecksKillThenRemove(t *testing.T) {
	r := membership.New(2, 64, time.Now)
	liveMember(t, r, "a")

	state, removed := r.ProbeFailed("a", now, errDown)
	assert.Equal(t, membership.Dead, state)
	assert.False(t, removed)
	assert.Empty(t, r.WriteSet())
	_, removed = r.ProbeFailed("a", now, errDown)
	assert.False(t, removed, "1 more failure of 2")
	_, removed = r.ProbeFailed("a", now, errDown)
	assert.True(t, removed, "2 more failures of 2")
	_, ok := r.Get("a")
	assert.False(t, ok)
}

func TestRegistry_ProbeOKTellsWhoNeedsASync(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(r *membership.Registry)
		incarnation string
		ready       bool
		want        bool
	}{
		{"live and well", func(*membership.Registry) {}, "a-inc", true, false},
		{"restarted", func(*membership.Registry) {}, "other", true, true},
		{"lost its data", func(*membership.Registry) {}, "a-inc", false, true},
		{"dead and answering again", func(r *membership.Registry) { r.Fail("a") }, "a-inc", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := membership.New(4, 64, time.Now)
			liveMember(t, r, "a")
			tt.setup(r)
			assert.Equal(t, tt.want, r.ProbeOK("a", now, tt.incarnation, tt.ready, 1))
		})
	}
}

func TestRegistry_StaleSyncEventsAreIgnored(t *testing.T) {
	r := membership.New(4, 64, time.Now)
	old, _ := r.StartSync("a", "inc-1")
	_, _ = r.StartSync("a", "inc-2") // it restarted meanwhile
	assert.ErrorIs(t, r.Joined("a", old, 1, true), membership.ErrStaleSync)
	assert.False(t, r.FailSync("a", old))
	m, _ := r.Get("a")
	assert.Equal(t, membership.Syncing, m.State)
	assert.Equal(t, "inc-2", m.Incarnation)
}
