package httpserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Token bounds: a token must be long enough not to be guessed, and made of
// characters that pass through .env files, shells and HTTP headers as is.
const (
	MinTokenBytes = 32
	MaxTokenBytes = 256
)

// CheckClusterToken checks CLUSTER_TOKEN. Without a token a service runs
// only when told explicitly that it runs insecure (CLUSTER_INSECURE=true).
func CheckClusterToken(token string, insecure bool) error {
	switch {
	case token == "" && insecure:
		return nil
	case token == "":
		return errors.New("CLUSTER_TOKEN is not set: every service of the cluster needs the same secret " +
			"(make up writes a random one into .env), or CLUSTER_INSECURE=true to run without authentication")
	case len(token) < MinTokenBytes || len(token) > MaxTokenBytes:
		return fmt.Errorf("CLUSTER_TOKEN must be %d to %d characters, got %d", MinTokenBytes, MaxTokenBytes, len(token))
	}
	for _, c := range []byte(token) {
		if !tokenChar(c) {
			return errors.New("CLUSTER_TOKEN must hold only letters, digits and - . _ ~ + / =")
		}
	}
	return nil
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
}

// RequireToken returns middleware that serves a request only when it
// carries "Authorization: Bearer <token>"; any other gets 401 and reaches
// no handler. The comparison takes the same time whatever the guess (it
// compares digests, so not even the length leaks). An empty token turns
// the check off: the service runs insecure, as configured.
func RequireToken(token string) func(http.Handler) http.Handler {
	if token == "" {
		return func(next http.Handler) http.Handler { return next }
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="distributed-counter internal API"`)
				WriteError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "missing or wrong cluster token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// SetToken adds the cluster token to an outbound request; an empty token adds nothing.
func SetToken(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

// RetryAfter is what an overloaded service asks clients to wait.
const RetryAfter = time.Second

// WriteOverloaded answers 503 overloaded with Retry-After: the request was
// shed before anything was done.
func WriteOverloaded(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
	WriteError(w, http.StatusServiceUnavailable, wire.CodeOverloaded, msg)
}

// LimitInFlight returns middleware that serves at most n requests at once.
// One more is shed at once with 503 overloaded: queueing it would only
// grow memory and latency for every request behind it.
func LimitInFlight(n int) func(http.Handler) http.Handler {
	slots := make(chan struct{}, n)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
			default:
				WriteOverloaded(w, "too many requests in flight; retry shortly")
				return
			}
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		})
	}
}

// ExtendDeadlines gives a long request (a snapshot stream) d to read its
// body and write its answer, past the server's short defaults.
func ExtendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(d)
	_ = rc.SetReadDeadline(deadline) // unsupported only by test recorders
	_ = rc.SetWriteDeadline(deadline)
}
