package httpserver_test

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
)

// counterStub answers like a counter's GET /internal/localcount on
// 127.0.0.1; it returns its port and the requests it got (path, query and
// authorization header).
func counterStub(t *testing.T, status int, body string) (port int, requests <-chan string) {
	t.Helper()
	seen := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.RequestURI() + " " + r.Header.Get("Authorization")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	_, p, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	port, err = strconv.Atoi(p)
	require.NoError(t, err)
	return port, seen
}

func TestLocalCount_WritesTheCountersAnswer(t *testing.T) {
	t.Parallel()
	port, paths := counterStub(t, http.StatusOK, `{"count":3,"last":{"epoch":1,"seq":7}}`)
	var out bytes.Buffer

	require.NoError(t, httpserver.LocalCount(&out, port, "secret", "acme corp/eu"))

	assert.JSONEq(t, `{"count":3,"last":{"epoch":1,"seq":7}}`, out.String())
	assert.Equal(t, "/internal/localcount?tenant=acme+corp%2Feu Bearer secret", <-paths)
}

func TestLocalCount_FailsWithTheAnswerWhenNotReady(t *testing.T) {
	t.Parallel()
	port, _ := counterStub(t, http.StatusConflict, `{"message":"counter has no complete copy of the data","code":"not_ready"}`)
	var out bytes.Buffer

	err := httpserver.LocalCount(&out, port, "", "acme")

	require.Error(t, err)
	assert.Contains(t, err.Error(), "status 409")
	assert.Contains(t, err.Error(), "not_ready")
	assert.Empty(t, out.String())
}
