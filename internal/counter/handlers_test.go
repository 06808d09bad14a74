package counter_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/counter"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

func do(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
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
	h := counter.NewServer(slog.New(slog.DiscardHandler), counter.NewService("c1", "inc"), 1<<20)
	last := wire.RoundID{Epoch: 1, Seq: 3, TxID: "t3"}
	rec := do(t, h, "POST", "/internal/join", jsonBody(t, wire.JoinRequest{
		Epoch: 1, ClusterID: "cl", Last: wire.Decision{Round: last, Commit: true}, Committed: last, Stable: 3,
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

	rec := do(t, h, "POST", "/internal/install?join=3", snapshot(rows, false))
	assert.Equal(t, http.StatusBadRequest, rec.Code, "no trailer: the stream was cut")
	rec = do(t, h, "GET", "/items/acme/count", "")
	assert.Equal(t, http.StatusConflict, rec.Code, "still syncing: no reads")
	assert.Contains(t, rec.Body.String(), wire.CodeNotReady)

	rec = do(t, h, "POST", "/internal/install?join=3", snapshot(rows, true))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = do(t, h, "GET", "/items/acme/count", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var lc wire.LocalCountResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &lc))
	assert.Equal(t, int64(2), lc.Count, "the resent rows count once")
}

func TestInstall_RefusesAnotherSession(t *testing.T) {
	h := joined(t)
	rec := do(t, h, "POST", "/internal/install?join=2", snapshot(nil, true))
	assert.Equal(t, http.StatusBadRequest, rec.Code, "the header is past that join point")
	rec = do(t, h, "POST", "/internal/install?join=9", snapshot(nil, true))
	assert.Equal(t, http.StatusConflict, rec.Code)
	assert.Contains(t, rec.Body.String(), wire.CodeSyncMismatch)
}

func TestCounter_RefusalsCarryTheirCode(t *testing.T) {
	h := joined(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"stale epoch", "POST", "/internal/prepare", `{"round":{"epoch":0,"seq":4},"stable":0,"view":[],"items":[]}`, 409, wire.CodeStaleEpoch},
		{"gap", "POST", "/internal/prepare", `{"round":{"epoch":1,"seq":9},"stable":0,"view":[],"items":[]}`, 409, wire.CodeRefused},
		{"commit of an unknown round", "POST", "/internal/commit", `{"round":{"epoch":1,"seq":9},"stable":0}`, 404, wire.CodeUnknownRound},
		{"read before the snapshot", "GET", "/internal/count/acme?epoch=1&fence=3", "", 409, wire.CodeNotReady},
		{"bad query", "GET", "/internal/count/acme?epoch=x&fence=3", "", 400, wire.CodeInvalid},
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
