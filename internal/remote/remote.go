// Package remote holds typed HTTP clients of the internal API: the
// coordinator's client of the counters, and the counters' client of the
// coordinator. Callers pass a context with a deadline; every client is built
// on an http.Client that has its own Timeout as a backstop.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Error is a non-2xx answer from the other side: it was reached and said no.
type Error struct {
	URL     string
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.URL, e.Status, e.Code, e.Message)
}

// Refused reports that the peer answered "no" (as opposed to not being
// reached); twopc aborts the round on it. A counter that answers that it
// has not joined (it restarted and lost its state) is not the participant
// the round was meant for: that counts as unreachable, so the round goes on
// without it.
func (e *Error) Refused() bool { return e.Code != wire.CodeNotReady }

// HasCode reports whether err is an answer with the given wire code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

func send(ctx context.Context, client *http.Client, method, u string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		e := &Error{URL: u, Status: resp.StatusCode}
		var we wire.Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if json.Unmarshal(data, &we) == nil {
			e.Code, e.Message = we.Code, we.Message
		} else {
			e.Message = string(data)
		}
		return nil, e
	}
	return resp, nil
}

// call sends in as JSON (when not nil) and decodes the answer into out (when not nil).
func call(ctx context.Context, client *http.Client, method, u string, in, out any) error {
	var body io.Reader
	var contentType string
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, u, err)
		}
		body, contentType = bytes.NewReader(data), "application/json"
	}
	resp, err := send(ctx, client, method, u, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, u, err)
	}
	return nil
}

// Counters calls counters; each method takes the counter's base URL (its id).
type Counters struct {
	client *http.Client
}

// NewCounters returns a client of the counters' internal API.
func NewCounters(client *http.Client) *Counters {
	if client == nil {
		panic("remote.NewCounters: nil client")
	}
	return &Counters{client: client}
}

// Prepare sends phase one of a round; nil is a yes vote.
func (c *Counters) Prepare(ctx context.Context, base string, req wire.PrepareRequest) error {
	return call(ctx, c.client, http.MethodPost, base+"/internal/prepare", req, nil)
}

// Commit sends a commit decision.
func (c *Counters) Commit(ctx context.Context, base string, req wire.DecisionRequest) error {
	return call(ctx, c.client, http.MethodPost, base+"/internal/commit", req, nil)
}

// Abort sends an abort decision.
func (c *Counters) Abort(ctx context.Context, base string, req wire.DecisionRequest) error {
	return call(ctx, c.client, http.MethodPost, base+"/internal/abort", req, nil)
}

// Join puts the counter into the write set at the given position.
func (c *Counters) Join(ctx context.Context, base string, req wire.JoinRequest) (wire.JoinResponse, error) {
	var resp wire.JoinResponse
	err := call(ctx, c.client, http.MethodPost, base+"/internal/join", req, &resp)
	return resp, err
}

// Count is a fenced read: the tenant's count as of a stable seq at least fence.
func (c *Counters) Count(ctx context.Context, base, tenantID string, epoch, fence uint64) (int64, error) {
	q := url.Values{"epoch": {strconv.FormatUint(epoch, 10)}, "fence": {strconv.FormatUint(fence, 10)}}
	var resp wire.CountResponse
	err := call(ctx, c.client, http.MethodGet, base+"/internal/count/"+url.PathEscape(tenantID)+"?"+q.Encode(), nil, &resp)
	return resp.Count, err
}

// LocalCount is the counter's own, unfenced count of a tenant.
func (c *Counters) LocalCount(ctx context.Context, base, tenantID string) (wire.LocalCountResponse, error) {
	var resp wire.LocalCountResponse
	err := call(ctx, c.client, http.MethodGet, base+"/items/"+url.PathEscape(tenantID)+"/count", nil, &resp)
	return resp, err
}

// IDs lists the ids the counter holds for a tenant.
func (c *Counters) IDs(ctx context.Context, base, tenantID string) ([]string, error) {
	var resp []string
	err := call(ctx, c.client, http.MethodGet, base+"/internal/ids/"+url.PathEscape(tenantID), nil, &resp)
	return resp, err
}

// Probe asks for the counter's status; it implements membership.Prober.
func (c *Counters) Probe(ctx context.Context, base string) (wire.Status, error) {
	var st wire.Status
	err := call(ctx, c.client, http.MethodGet, base+"/health", nil, &st)
	return st, err
}

// Snapshot opens the stream of rows with since < seq <= upto. The caller closes it.
func (c *Counters) Snapshot(ctx context.Context, base string, since, upto uint64) (io.ReadCloser, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "upto": {strconv.FormatUint(upto, 10)}}
	resp, err := send(ctx, c.client, http.MethodGet, base+"/internal/snapshot?"+q.Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Install streams a snapshot into a syncing counter that joined at joinSeq.
func (c *Counters) Install(ctx context.Context, base string, joinSeq uint64, snapshot io.Reader) error {
	u := base + "/internal/install?join=" + strconv.FormatUint(joinSeq, 10)
	resp, err := send(ctx, c.client, http.MethodPost, u, snapshot, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// Coordinator is the counters' client of the coordinator.
type Coordinator struct {
	client *http.Client
	base   string
}

// NewCoordinator returns a client of the coordinator at base.
func NewCoordinator(client *http.Client, base string) *Coordinator {
	if client == nil {
		panic("remote.NewCoordinator: nil client")
	}
	return &Coordinator{client: client, base: base}
}

// Register announces the counter with its status.
func (c *Coordinator) Register(ctx context.Context, st wire.Status) (wire.RegisterResponse, error) {
	var resp wire.RegisterResponse
	err := call(ctx, c.client, http.MethodPost, c.base+"/internal/register", wire.RegisterRequest{Status: st}, &resp)
	return resp, err
}
