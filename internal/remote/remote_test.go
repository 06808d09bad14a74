package remote_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// TestError_TellsARefusalFromARejectionFromAFailure: only a protocol
// refusal is a "no"; only an answer about the request is a rejection;
// everything else is the peer's failure.
func TestError_TellsARefusalFromARejectionFromAFailure(t *testing.T) {
	tests := []struct {
		status            int
		code              string
		refused, rejected bool
	}{
		{409, wire.CodeVotedNo, true, false},
		{409, wire.CodeStaleEpoch, true, false},
		{409, wire.CodeBehind, true, false},
		{409, wire.CodeUnknownRound, true, false},
		{409, wire.CodeSyncMismatch, true, false},
		{409, wire.CodeNotReady, false, false}, // a restarted counter: like unreachable
		{400, wire.CodeInvalid, false, true},
		{404, wire.CodeNotFound, false, true},
		{405, wire.CodeMethod, false, true},
		{413, wire.CodeTooLarge, false, true},
		{401, wire.CodeUnauthorized, false, false}, // another token: it cannot take part
		{408, wire.CodeTimeout, false, false},
		{429, "", false, false},
		{500, wire.CodeInternal, false, false},
		{502, "", false, false},
	}
	for _, tt := range tests {
		e := &remote.Error{Status: tt.status, Code: tt.code}
		assert.Equal(t, tt.refused, e.Refused(), "%d %s refused", tt.status, tt.code)
		assert.Equal(t, tt.rejected, e.Rejected(), "%d %s rejected", tt.status, tt.code)
		assert.Equal(t, tt.rejected, remote.IsRejected(e))
	}
}

func TestCounters_SendTheTokenAndDecodeErrors(t *testing.T) {
	var auth, ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		ids = append(ids, r.Header.Get(wire.CounterIDHeader))
		assert.Equal(t, "acme corp/eu", r.URL.Query().Get("tenant"), "the tenant travels as a query parameter")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"message":"applied 3, read at 5","code":"behind"}`))
	}))
	defer srv.Close()
	c := remote.NewCounters(&http.Client{Timeout: time.Second}, "the-token")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, err := c.Count(ctx, "c1", "acme corp/eu", 1, 5)
	require.ErrorIs(t, err, remote.ErrNoAddress, "no call before the counter's address is known")
	assert.Empty(t, auth)
	c.SetAddress("c1", srv.URL)
	_, _, err = c.Count(ctx, "c1", "acme corp/eu", 1, 5)
	require.Error(t, err)
	assert.True(t, remote.HasCode(err, wire.CodeBehind))
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Refused())
	assert.Equal(t, []string{"Bearer the-token"}, auth)
	assert.Equal(t, []string{"c1"}, ids, "every call names the counter it is meant for")
}
