package counter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/counter"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

const testToken = "test-token-0123456789abcdef0123456789"

// do sends a request with the cluster token, as the coordinator does.
func do(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	return doAs(t, h, testToken, method, path, body)
}

// doAs sends a request with the given token ("" sends none).
func doAs(t *testing.T, h http.Handler, token, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	h.ServeHTTP(rec, req)
	return rec
}

func newServer(t testing.TB) http.Handler {
	return counter.NewServer(slog.New(slog.DiscardHandler), newService(t), counter.NewMetrics(),
		counter.Config{ClusterToken: testToken, MaxRoundBytes: 1 << 20, SyncTimeout: time.Minute})
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// joined returns a counter that joined a cluster whose last committed
// round is 3, so it needs a snapshot of seqs 1..3.
func joined(t *testing.T) http.Handler {
	t.Helper()
	h := newServer(t)
	last := wire.RoundID{Epoch: 1, Seq: 3, TxID: "t3"}
	rec := do(t, h, "POST", "/internal/join", jsonBody(t, wire.JoinRequest{
		Epoch: 1, ClusterID: "cl", SyncID: "s1", Last: wire.Decision{Round: last, Commit: true}, Committed: last, Stable: 3,
	}))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return h
}

func snapshot(rows []wire.SnapshotEntry, trailer bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	_ = enc.Encode(wire.SnapshotHeader{Since: 0, Upto: 3})
	for _, r := range rows {
		_ = enc.Encode(r)
	}
	if trailer {
		_ = enc.Encode(wire.SnapshotTrailer{End: true, Count: len(rows)})
	}
	return b.String()
}

func TestInstall_ACutStreamLeavesTheCounterSyncingAndCanBeResent(t *testing.T) {
	h := joined(t)
	rows := []wire.SnapshotEntry{{Tenant: "acme", ID: "a", Seq: 1}, {Tenant: "acme", ID: "b", Seq: 3}}

	rec := do(t, h, "POST", "/internal/install?join=3&sync=s1", snapshot(rows, false))
	assert.Equal(t, http.StatusBadRequest, rec.Code, "no trailer: the stream was cut")
	rec = do(t, h, "GET", "/internal/localcount?tenant=acme", "")
	assert.Equal(t, http.StatusConflict, rec.Code, "still syncing: no reads")
	assert.Contains(t, rec.Body.String(), wire.CodeNotReady)

	rec = do(t, h, "POST", "/internal/install?join=3&sync=s1", snapshot(rows, true))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"rows":2}`, rec.Body.String(), "the rows merged")
	rec = do(t, h, "GET", "/internal/localcount?tenant=acme", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var lc wire.LocalCountResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &lc))
	assert.Equal(t, int64(2), lc.Count, "the resent rows count once")
}

func TestInstall_RefusesAnotherSession(t *testing.T) {
	h := joined(t)
	rec := do(t, h, "POST", "/internal/install?join=2&sync=s1", snapshot(nil, true))
	assert.Equal(t, http.StatusBadRequest, rec.Code, "the header is past that join point")
	rec = do(t, h, "POST", "/internal/install?join=9&sync=s1", snapshot(nil, true))
	assert.Equal(t, http.StatusConflict, rec.Code)
	assert.Contains(t, rec.Body.String(), wire.CodeSyncMismatch)
	rec = do(t, h, "POST", "/internal/install?join=3&sync=s0", snapshot(nil, true))
	assert.Equal(t, http.StatusConflict, rec.Code, "another session at the same join point")
	assert.Contains(t, rec.Body.String(), wire.CodeSyncMismatch)
	rec = do(t, h, "POST", "/internal/install?join=3", snapshot(nil, true))
	assert.Equal(t, http.StatusBadRequest, rec.Code, "no session named")
}

func TestCounter_RefusalsCarryTheirCode(t *testing.T) {
	h := joined(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"stale epoch", "POST", "/internal/prepare", `{"round":{"epoch":0,"seq":4},"stable":0,"view":[],"items":[]}`, 409, wire.CodeStaleEpoch},
		{"gap", "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":9},"stable":0,"view":[],"items":[]}`, 409, wire.CodeVotedNo},
		{"commit of an unknown round", "POST", "/internal/commit", `{"round":{"epoch":1,"seq":9},"stable":0}`, 409, wire.CodeUnknownRound},
		{"read before the snapshot", "GET", "/internal/count?tenant=acme&epoch=1&fence=3", "", 409, wire.CodeNotReady},
		{"bad query", "GET", "/internal/count?tenant=acme&epoch=x&fence=3", "", 400, wire.CodeInvalid},
		{"unknown field", "POST", "/internal/commit", `{"round":{"epoch":1,"seq":4},"x":1}`, 400, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.path, tt.body)
			assert.Equal(t, tt.status, rec.Code, rec.Body.String())
			var e wire.Error
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
			assert.Equal(t, tt.code, e.Code)
		})
	}
}

// routes lists every route of a counter with a well-formed request.
var routes = []struct{ method, path, body string }{
	{"GET", "/health", ""},
	{"GET", "/internal/status", ""},
	{"GET", "/internal/localcount?tenant=acme", ""},
	{"GET", "/internal/ids?tenant=acme", ""},
	{"POST", "/internal/prepare", `{"round":{"epoch":1,"seq":4},"stable":3,"view":["http://c1:8080"],"items":[{"id":"x","tenant":"acme"}]}`},
	{"POST", "/internal/commit", `{"round":{"epoch":1,"seq":4},"stable":3}`},
	{"POST", "/internal/abort", `{"round":{"epoch":1,"seq":4},"stable":3}`},
	{"GET", "/internal/count?tenant=acme&epoch=99&fence=3", ""},
	{"POST", "/internal/join", `{"epoch":99,"cluster_id":"other","last":{"round":{"epoch":99,"seq":1}},"committed":{"epoch":99,"seq":1},"stable":1}`},
	{"GET", "/internal/snapshot?since=0&upto=3", ""},
	{"POST", "/internal/install?join=3&sync=s1", snapshot([]wire.SnapshotEntry{{Tenant: "acme", ID: "forged", Seq: 1}}, true)},
	{"GET", "/internal/nosuchroute", ""},
	{"GET", "/debug/pprof/", ""},
	{"GET", "/debug/pprof/heap", ""},
}

// TestCounter_EveryRouteRequiresTheToken is the regression test of an
// unauthenticated internal API: without the cluster token every route,
// unknown ones included, answers 401 and changes nothing.
func TestCounter_EveryRouteRequiresTheToken(t *testing.T) {
	h := joined(t)
	before := do(t, h, "GET", "/internal/status", "").Body.String()
	for _, token := range []string{"", "wrong-token-0123456789abcdef0123456789", testToken + "x"} {
		for _, r := range routes {
			rec := doAs(t, h, token, r.method, r.path, r.body)
			assert.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s with token %q", r.method, r.path, token)
			assert.Contains(t, rec.Body.String(), wire.CodeUnauthorized)
		}
	}
	assert.Equal(t, before, do(t, h, "GET", "/internal/status", "").Body.String(), "nothing changed")

	// With the token, the same requests are served (or refused by the protocol).
	for _, r := range routes {
		rec := do(t, h, r.method, r.path, r.body)
		assert.NotEqual(t, http.StatusUnauthorized, rec.Code, "%s %s", r.method, r.path)
	}
}

// TestCounter_MalformedRequestsAreRejectedAndChangeNothing: every malformed
// request is a 4xx that is not a protocol refusal, so the coordinator never
// takes it for the counter's failure, and the counter's state is untouched.
// Among them the regression of an epoch of 2^64-1 in a read, which made the
// counter refuse every later message of the real coordinator.
func TestCounter_MalformedRequestsAreRejectedAndChangeNothing(t *testing.T) {
	h := joined(t)
	before := do(t, h, "GET", "/internal/status", "").Body.String()
	long := strings.Repeat("x", wire.MaxFieldBytes+1)
	tests := []struct{ name, method, path, body string }{
		{"read epoch overflow", "GET", "/internal/count?tenant=acme&epoch=18446744073709551615&fence=3", ""},
		{"read without tenant", "GET", "/internal/count?epoch=1&fence=3", ""},
		{"read of an invalid tenant", "GET", "/internal/count?tenant=%ff&epoch=1&fence=3", ""},
		{"prepare with an empty tenant", "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":4},"view":[],"items":[{"id":"a","tenant":""}]}`},
		{"prepare with a long id", "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":4},"view":[],"items":[{"id":"` + long + `","tenant":"t"}]}`},
		{"prepare with a bad view", "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":4},"view":["has space"],"items":[]}`},
		{"prepare epoch overflow", "POST", "/internal/prepare", `{"round":{"epoch":18446744073709551615,"seq":4},"view":[],"items":[]}`},
		{"prepare of seq 0", "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":0},"view":[],"items":[]}`},
		{"prepare not JSON", "POST", "/internal/prepare", `[1,2`},
		{"commit epoch overflow", "POST", "/internal/commit", `{"round":{"epoch":18446744073709551615,"seq":4}}`},
		{"join without cluster", "POST", "/internal/join", `{"epoch":2,"cluster_id":"","last":{"round":{"epoch":2,"seq":1}}}`},
		{"join epoch overflow", "POST", "/internal/join", `{"epoch":18446744073709551615,"cluster_id":"x"}`},
		{"install with an empty row", "POST", "/internal/install?join=3&sync=s1", snapshot([]wire.SnapshotEntry{{Tenant: "", ID: "a", Seq: 1}}, true)},
		{"install with a long line", "POST", "/internal/install?join=3&sync=s1", `{"since":0,"upto":3}` + "\n" + `{"t":"` + strings.Repeat("a", 20<<10) + `"}` + "\n"},
		{"snapshot bad query", "GET", "/internal/snapshot?since=x", ""},
		{"wrong method", "DELETE", "/internal/prepare", ""},
	}
	for _, tt := range tests {
		rec := do(t, h, tt.method, tt.path, tt.body)
		assert.True(t, rec.Code/100 == 4, "%s: status %d", tt.name, rec.Code)
		var e wire.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), tt.name)
		assert.False(t, wire.IsRefusal(e.Code), "%s: %s is not a protocol refusal", tt.name, e.Code)
	}
	assert.Equal(t, before, do(t, h, "GET", "/internal/status", "").Body.String(), "nothing changed")

	// The real coordinator (epoch 1) is still heard.
	rec := do(t, h, "POST", "/internal/install?join=3&sync=s1", snapshot(nil, true))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = do(t, h, "GET", fmt.Sprintf("/internal/count?tenant=acme&epoch=%d&fence=3", 1), "")
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestCounter_PrepareOverMaxRoundBytesIs413(t *testing.T) {
	h := counter.NewServer(slog.New(slog.DiscardHandler), newService(t), counter.NewMetrics(),
		counter.Config{ClusterToken: testToken, MaxRoundBytes: 100, SyncTimeout: time.Minute})
	rec := do(t, h, "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":1},"view":[],"items":[{"id":"`+strings.Repeat("a", 100)+`","tenant":"t"}]}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	var e wire.Error
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
	assert.False(t, wire.IsRefusal(e.Code), "413 is about the request, not a vote")
}

// newService returns a counter service over an empty in-memory ledger.
func newService(t testing.TB) *counter.Service {
	t.Helper()
	l, err := ledger.Open(vfs.NewMem(), "data", ledger.Options{ID: "c1", Incarnation: "inc"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return counter.NewService(l, "http://c1:8080")
}

// TestCounter_RefusesCallsMeantForAnotherCounter: after a restart an
// address may serve a counter with other data; a call that names another
// counter is refused (409 wrong_counter) and changes nothing.
func TestCounter_RefusesCallsMeantForAnotherCounter(t *testing.T) {
	h := newServer(t)
	for _, tt := range []struct{ id, want string }{{"c2", wire.CodeWrongCounter}, {"c1", ""}, {"", ""}} {
		req := httptest.NewRequest("POST", "/internal/join", strings.NewReader(`{"epoch":1,"cluster_id":"cl","sync_id":"s","last":{"round":{"epoch":1,"seq":0},"commit":false},"committed":{"epoch":0,"seq":0}}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if tt.id != "" {
			req.Header.Set(wire.CounterIDHeader, tt.id)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if tt.want == "" {
			assert.Equal(t, http.StatusOK, rec.Code, "%q: %s", tt.id, rec.Body)
			continue
		}
		assert.Equal(t, http.StatusConflict, rec.Code, tt.id)
		var e wire.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, tt.want, e.Code)
		st := do(t, h, "GET", "/internal/status", "")
		assert.Contains(t, st.Body.String(), `"mode":"idle"`, "the refused join changed nothing")
	}
}
