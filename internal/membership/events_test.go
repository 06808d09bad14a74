package membership_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/membership"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// TestRegistry_EventsTellEachTransition: every change of a member's state
// is an event, stamped by the registry's clock, newest first.
func TestRegistry_EventsTellEachTransition(t *testing.T) {
	clock := now
	r := membership.New(2, 64, func() time.Time { clock = clock.Add(time.Second); return clock })
	liveMember(t, r, "a")
	r.ProbeFailed("a", now, fmt.Errorf("probe: %w", syscall.ECONNREFUSED))
	r.ProbeFailed("a", now, errDown)
	r.ProbeFailed("a", now, errDown)

	var kinds, details []string
	for _, e := range r.Events() {
		assert.Equal(t, "a", e.ID)
		kinds = append(kinds, e.Kind)
		details = append(details, e.Detail)
	}
	assert.Equal(t, []string{membership.EventRemoved, membership.EventDead, membership.EventLive, membership.EventRegistered}, kinds)
	assert.Equal(t, "health check: connection refused", details[1])
	ev := r.Events()
	assert.True(t, ev[0].At.After(ev[1].At), "newest first")
}

// TestRegistry_KeepsTheLatestEvents: the events are a ring of MaxEvents.
func TestRegistry_KeepsTheLatestEvents(t *testing.T) {
	clock := now
	r := membership.New(4, 1000, func() time.Time { clock = clock.Add(time.Second); return clock })
	for i := range membership.MaxEvents + 7 {
		r.StartSync(fmt.Sprintf("c%03d", i), "inc")
	}
	ev := r.Events()
	require.Len(t, ev, membership.MaxEvents)
	assert.Equal(t, fmt.Sprintf("c%03d", membership.MaxEvents+6), ev[0].ID, "the newest first")
	assert.Equal(t, "c007", ev[len(ev)-1].ID, "the oldest kept")
	for i := 1; i < len(ev); i++ {
		assert.True(t, ev[i-1].At.After(ev[i].At))
	}
}

// TestErrorKind_NamesNoAddressOrMessage: the kind of a failed call is one of
// a few fixed words, or the status and a known code of an answer: never
// the peer's address, host or message.
func TestErrorKind_NamesNoAddressOrMessage(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8080},
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("probe http://10.0.0.7:8080/health: %w", refused), "connection refused"},
		{fmt.Errorf("probe http://10.0.0.7:8080: %w", ctx.Err()), "timeout"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "connection reset"},
		{&net.DNSError{Err: "no such host", Name: "counter-secret-host"}, "unknown host"},
		{&remote.Error{URL: "http://10.0.0.7:8080", Status: 503, Code: wire.CodeNotReady, Message: "tenant acme"}, "answered 503 not_ready"},
		{&remote.Error{URL: "http://10.0.0.7:8080", Status: 502, Code: "tenant_acme_secret", Message: "x"}, "answered 502"},
		{fmt.Errorf("wrapped: %w", &remote.Error{Status: 409, Code: wire.CodeWrongCounter}), "answered 409 wrong_counter"},
		{errors.New("http://10.0.0.7:8080: something odd"), "unreachable"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, membership.ErrorKind(c.err), "%v", c.err)
	}

	// A real refused connection, as the monitor sees it.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	_, err := http.Get(addr)
	require.Error(t, err)
	assert.Equal(t, "connection refused", membership.ErrorKind(err))
}
