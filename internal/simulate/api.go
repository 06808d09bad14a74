package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// API is a client of the coordinator's public API, as a user sees it.
type API struct {
	BaseURL string
	Client  *http.Client
	// Timeout bounds each call.
	Timeout time.Duration
}

// StatusError is an answer other than 200.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Body) }

// AddItems posts items to POST /items.
func (a API) AddItems(ctx context.Context, items []wire.Item) error {
	body, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("encode items: %w", err)
	}
	var resp wire.MessageResponse
	if err := a.do(ctx, http.MethodPost, "/items", body, &resp); err != nil {
		return fmt.Errorf("add %d items: %w", len(items), err)
	}
	if resp.Message != "Success" {
		return fmt.Errorf("add %d items: answer %q, want Success", len(items), resp.Message)
	}
	return nil
}

// Count reads a tenant's count from GET /items/{tenantID}/count.
func (a API) Count(ctx context.Context, tenantID string) (int64, error) {
	var resp wire.CountResponse
	if err := a.do(ctx, http.MethodGet, "/items/"+url.PathEscape(tenantID)+"/count", nil, &resp); err != nil {
		return 0, fmt.Errorf("count %s: %w", tenantID, err)
	}
	return resp.Count, nil
}

// Counters reads the coordinator's view of the cluster from GET /counters.
func (a API) Counters(ctx context.Context) (wire.CountersResponse, error) {
	var resp wire.CountersResponse
	if err := a.do(ctx, http.MethodGet, "/counters", nil, &resp); err != nil {
		return resp, fmt.Errorf("list counters: %w", err)
	}
	return resp, nil
}

// Raw sends a request as is and returns the status and body of the answer.
func (a API) Raw(ctx context.Context, method, path string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(bytes.TrimSpace(data)), err
}

func (a API) do(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(data))}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer %q: %w", data, err)
	}
	return nil
}
