package httpserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// NewTransport returns the transport for calls between the services: many
// idle connections per host, since the coordinator talks to each counter
// from many requests at once.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil, // internal traffic never goes through a proxy
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
	}
}

// NewLogger returns the JSON logger of a service.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Setting is a named configuration value, for the messages of Validate.
type Setting[T int64 | time.Duration] struct {
	Name  string
	Value T
}

// Named returns a setting.
func Named[T int64 | time.Duration](name string, value T) Setting[T] {
	return Setting[T]{Name: name, Value: value}
}

// AtLeast returns one error for each setting below its minimum, in order.
func AtLeast[T int64 | time.Duration](minimum T, settings ...Setting[T]) []error {
	var errs []error
	for _, s := range settings {
		if s.Value < minimum {
			errs = append(errs, fmt.Errorf("%s must be at least %v, got %v", s.Name, minimum, s.Value))
		}
	}
	return errs
}

// ParseLevel parses a LOG_LEVEL value.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("LOG_LEVEL %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// Healthcheck asks the service on this host's port for path (/health) and
// returns an error unless it answers 200. Scratch images have no curl; the
// binary checks itself (`coordinator healthcheck`). token is sent as the
// cluster token when not empty (a counter serves only its internal API).
func Healthcheck(port int, path, token string) error {
	if _, err := getLocal(port, path, token); err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	return nil
}

// Status asks the counter on this host's port for its status (GET
// /internal/status: its id, position and address) and writes the JSON
// answer to w. `make simulate` runs it with docker exec (`counter status`)
// to learn which counter, by id, a container runs.
func Status(w io.Writer, port int, token string) error {
	body, err := getLocal(port, "/internal/status", token)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	_, err = w.Write(body)
	return err
}

// LocalCount asks the counter on this host's port for its own count of
// tenantID (GET /internal/localcount) and writes the JSON answer to w. Any
// answer but 200 is an error that carries the status and body: 409 means the
// counter is still syncing. `make simulate` runs it with docker exec
// (`counter localcount <tenant>`) to ask a counter from inside the compose
// network, where its port is not published.
func LocalCount(w io.Writer, port int, token, tenantID string) error {
	body, err := getLocal(port, "/internal/localcount?"+url.Values{"tenant": {tenantID}}.Encode(), token)
	if err != nil {
		return fmt.Errorf("localcount: %w", err)
	}
	_, err = w.Write(body)
	return err
}

// getLocal GETs path from the service on this host's port, with a short
// deadline, and returns the body of a 200 answer.
func getLocal(port int, path, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return nil, err
	}
	SetToken(req, token)
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}
