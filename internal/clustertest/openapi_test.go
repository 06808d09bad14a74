package clustertest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/api"
	"github.com/distributed-counter/distributed-counter/internal/clustertest"
)

// TestOpenAPI_RealAnswersMatchTheDescription sends requests of every kind
// to an in-process cluster and validates each answer (status, headers,
// body) against api/openapi.yaml, and each well-formed request too, so the
// description cannot drift from the code.
func TestOpenAPI_RealAnswersMatchTheDescription(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.Spec())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(ctx), "the description itself is valid")
	c := startLive(t, clustertest.Options{MaxInflightRequests: 1})
	doc.Servers = openapi3.Servers{{URL: c.Coordinator.URL}} // this cluster, not the described default
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	tooMany := "[" + strings.Repeat(`{"id":"x","tenant":"t"},`, 10000) + `{"id":"y","tenant":"t"}]`
	cases := []struct {
		name, method, path, body string
		status                   int
		validRequest             bool
	}{
		{"add", "POST", "/items", `[{"id":"a","tenant":"acme"},{"id":"b","tenant":"acme corp/eu"}]`, 200, true},
		{"add nothing", "POST", "/items", `[]`, 200, true},
		{"add malformed", "POST", "/items", `[{"id":"a"}]`, 400, false},
		{"add too many", "POST", "/items", tooMany, 413, false},
		{"add with a wrong method", "DELETE", "/items", ``, 405, false},
		{"count", "GET", "/items/acme/count", ``, 200, true},
		{"count an escaped tenant", "GET", "/items/acme%20corp%2Feu/count", ``, 200, true},
		{"count a bad tenant", "GET", "/items/%ff/count", ``, 400, false},
		{"counters", "GET", "/counters", ``, 200, true},
		{"health", "GET", "/health", ``, 200, true},
		{"description", "GET", "/openapi.yaml", ``, 200, true},
		{"status page", "GET", "/status", ``, 200, true},
		{"status", "GET", "/status.json", ``, 200, true},
		{"metrics", "GET", "/metrics", ``, 200, true},
	}
	for _, tt := range cases {
		req, err := http.NewRequestWithContext(ctx, tt.method, c.Coordinator.URL+tt.path, strings.NewReader(tt.body))
		require.NoError(t, err)
		if tt.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Client.Do(req)
		require.NoError(t, err, tt.name)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, tt.status, resp.StatusCode, "%s: %s", tt.name, body)

		// Route the request as the description sees it (its body replayed).
		req.Body = io.NopCloser(strings.NewReader(tt.body))
		route, params, err := router.FindRoute(req)
		if tt.method == "DELETE" {
			require.Error(t, err, "no DELETE in the description")
			continue
		}
		require.NoError(t, err, tt.name)
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if tt.validRequest {
			assert.NoError(t, openapi3filter.ValidateRequest(ctx, in), "%s: the request", tt.name)
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			// kin-openapi decodes no HTML: the page's status and content
			// type are checked, its body by the browser test.
			Options: &openapi3filter.Options{IncludeResponseStatus: true,
				ExcludeResponseBody: strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")},
		}
		out.SetBodyBytes(body)
		assert.NoError(t, openapi3filter.ValidateResponse(ctx, out), "%s: the answer %s", tt.name, bytes.TrimSpace(body))
	}

	// An overloaded answer carries Retry-After, as described.
	release := c.Faults.Add(clustertest.Rule{Path: "/internal/prepare", Fault: clustertest.Hold})
	defer release()
	go func() { _, _ = c.Add(context.WithoutCancel(ctx), items("acme", "held")...) }()
	require.Eventually(t, func() bool {
		resp, err := c.Do(ctx, http.MethodGet, "/health", nil)
		if err != nil || resp.Status != http.StatusServiceUnavailable {
			return false
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Coordinator.URL+"/health", nil)
		route, params, err := router.FindRoute(req)
		require.NoError(t, err)
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 resp.Status, Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}},
		}
		out.SetBodyBytes(resp.Body)
		assert.NoError(t, openapi3filter.ValidateResponse(ctx, out), "overloaded: %s", resp.Body)
		return true
	}, waitFor, tick)
}
