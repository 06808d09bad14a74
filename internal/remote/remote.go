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
	"sync"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
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

// Kind names the answer without the peer's address or message: its
// status, and its code when it is one of the wire codes (a peer chooses
// its code: any other one is not repeated).
func (e *Error) Kind() string {
	if wire.IsKnownCode(e.Code) {
		return fmt.Sprintf("answered %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("answered %d", e.Status)
}

// Refused reports a protocol refusal (wire.IsRefusal): the peer understood
// the request and said no; twopc aborts the round on it. A counter that
// answers that it has not joined, or an address that now answers as
// another counter, is not the participant the round was meant for: that is
// neither a refusal nor a rejection, it counts as unreachable, so the round
// goes on without it.
func (e *Error) Refused() bool {
	return wire.IsRefusal(e.Code) && e.Code != wire.CodeNotReady && e.Code != wire.CodeWrongCounter
}

// Rejected reports an answer about the request rather than the peer: 400,
// 404, 405, 413, 414 or 431 without a refusal code. The caller sent
// something the peer does not take; it never means the peer failed. Any
// other answer (401: a peer with another token; 408, 429: a peer or proxy
// that could not serve; 5xx) is the peer's failure.
func (e *Error) Rejected() bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
		http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge:
		return !wire.IsRefusal(e.Code)
	}
	return false
}

// IsRejected reports whether err is an answer that rejects the request (see Error.Rejected).
func IsRejected(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Rejected()
}

// HasCode reports whether err is an answer with the given wire code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// target is who a call is for: an address, and the counter id meant to
// answer there (empty for the coordinator).
type target struct{ base, id string }

func send(ctx context.Context, client *http.Client, token, method string, to target, path string, body io.Reader, contentType string) (*http.Response, error) {
	u := to.base + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, u, err)
	}
	httpserver.SetToken(req, token)
	if to.id != "" {
		req.Header.Set(wire.CounterIDHeader, to.id)
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
func call(ctx context.Context, client *http.Client, token, method string, to target, path string, in, out any) error {
	var data []byte
	if in != nil {
		var err error
		if data, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	return callRaw(ctx, client, token, method, to, path, data, out)
}

// maxAnswerBytes bounds a decoded answer (a status with its view is the largest).
const maxAnswerBytes = 1 << 20

// callRaw sends an encoded JSON body (when not nil) and decodes the answer
// into out (when not nil).
func callRaw(ctx context.Context, client *http.Client, token, method string, to target, path string, data []byte, out any) error {
	var body io.Reader
	var contentType string
	if data != nil {
		body, contentType = bytes.NewReader(data), "application/json"
	}
	resp, err := send(ctx, client, token, method, to, path, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s%s: %w", method, to.base, path, err)
	}
	return nil
}

// ErrNoAddress: the coordinator knows no address of the counter (it has not
// registered since the coordinator started). It counts as unreachable.
var ErrNoAddress = errors.New("no address known for the counter")

// Counters calls counters by id. Each counter's address is the one it last
// registered with (SetAddress): a counter keeps its id, kept in its data,
// when it comes back at another address. Every call names the counter it
// is meant for, and a counter refuses calls meant for another.
type Counters struct {
	client *http.Client
	token  string

	mu    sync.RWMutex
	addrs map[string]string // counter id -> base URL
}

// NewCounters returns a client of the counters' internal API that
// authenticates with the cluster token (none when empty).
func NewCounters(client *http.Client, token string) *Counters {
	if client == nil {
		panic("remote.NewCounters: nil client")
	}
	return &Counters{client: client, token: token, addrs: make(map[string]string)}
}

// SetAddress records where counter id is reached, and reports whether that changed.
func (c *Counters) SetAddress(id, base string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs[id] == base {
		return false
	}
	c.addrs[id] = base
	return true
}

// Forget drops the address of a counter removed from the cluster.
func (c *Counters) Forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.addrs, id)
}

// Address is where counter id is reached, if known.
func (c *Counters) Address(id string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	base, ok := c.addrs[id]
	return base, ok
}

func (c *Counters) target(id string) (target, error) {
	base, ok := c.Address(id)
	if !ok {
		return target{}, fmt.Errorf("counter %s: %w", id, ErrNoAddress)
	}
	return target{base: base, id: id}, nil
}

func (c *Counters) call(ctx context.Context, method, id, path string, in, out any) error {
	to, err := c.target(id)
	if err != nil {
		return err
	}
	return call(ctx, c.client, c.token, method, to, path, in, out)
}

// Prepare sends phase one of a round, encoded once for every participant
// (wire.EncodePrepare); no error is a yes vote, with its new ids per tenant.
func (c *Counters) Prepare(ctx context.Context, id string, body []byte) (wire.Vote, error) {
	to, err := c.target(id)
	if err != nil {
		return wire.Vote{}, err
	}
	resp, err := send(ctx, c.client, c.token, http.MethodPost, to, "/internal/prepare", bytes.NewReader(body), "application/json")
	if err != nil {
		return wire.Vote{}, err
	}
	defer resp.Body.Close()
	// A vote names at most the round's tenants: never more than its prepare.
	var vote wire.Vote
	if err := json.NewDecoder(io.LimitReader(resp.Body, int64(len(body))+maxAnswerBytes)).Decode(&vote); err != nil {
		return wire.Vote{}, fmt.Errorf("decode the vote of %s: %w", id, err)
	}
	for tenantID, n := range vote.Added {
		if n < 0 || wire.CheckField("tenant", tenantID) != nil {
			return wire.Vote{}, fmt.Errorf("the vote of %s names a bad tenant or count", id)
		}
	}
	return vote, nil
}

// Commit sends a commit decision.
func (c *Counters) Commit(ctx context.Context, id string, req wire.DecisionRequest) error {
	return c.call(ctx, http.MethodPost, id, "/internal/commit", req, nil)
}

// Abort sends an abort decision.
func (c *Counters) Abort(ctx context.Context, id string, req wire.DecisionRequest) error {
	return c.call(ctx, http.MethodPost, id, "/internal/abort", req, nil)
}

// Join puts the counter into the write set at the given position.
func (c *Counters) Join(ctx context.Context, id string, req wire.JoinRequest) (wire.JoinResponse, error) {
	var resp wire.JoinResponse
	err := c.call(ctx, http.MethodPost, id, "/internal/join", req, &resp)
	return resp, err
}

// Count is a fenced read: the tenant's count as of a stable seq at least
// fence, and that seq. The tenant travels as a query parameter, which
// encodes any string.
func (c *Counters) Count(ctx context.Context, id, tenantID string, epoch, fence uint64) (int64, uint64, error) {
	q := url.Values{"tenant": {tenantID}, "epoch": {strconv.FormatUint(epoch, 10)}, "fence": {strconv.FormatUint(fence, 10)}}
	var resp wire.FencedCountResponse
	err := c.call(ctx, http.MethodGet, id, "/internal/count?"+q.Encode(), nil, &resp)
	if err == nil && (resp.At < fence || resp.Count < 0) {
		err = fmt.Errorf("count of %s: at %d below the fence %d, or negative", id, resp.At, fence)
	}
	return resp.Count, resp.At, err
}

// LocalCount is the counter's own, unfenced count of a tenant.
func (c *Counters) LocalCount(ctx context.Context, id, tenantID string) (wire.LocalCountResponse, error) {
	var resp wire.LocalCountResponse
	err := c.call(ctx, http.MethodGet, id, "/internal/localcount?"+url.Values{"tenant": {tenantID}}.Encode(), nil, &resp)
	return resp, err
}

// IDs lists the ids the counter holds for a tenant.
func (c *Counters) IDs(ctx context.Context, id, tenantID string) ([]string, error) {
	var resp []string
	err := c.call(ctx, http.MethodGet, id, "/internal/ids?"+url.Values{"tenant": {tenantID}}.Encode(), nil, &resp)
	return resp, err
}

// Probe asks for the counter's status; it implements membership.Prober.
// An answer that is not a valid status, or from another counter, is an
// error; the address the counter reports is recorded.
func (c *Counters) Probe(ctx context.Context, id string) (wire.Status, error) {
	var st wire.Status
	if err := c.call(ctx, http.MethodGet, id, "/internal/status", nil, &st); err != nil {
		return wire.Status{}, err
	}
	if err := st.Check(); err != nil {
		return wire.Status{}, fmt.Errorf("status of %s: %w", id, err)
	}
	if st.ID != id {
		return wire.Status{}, fmt.Errorf("status of %s: answered as counter %s", id, st.ID)
	}
	return st, nil
}

// Snapshot opens the stream of rows with since < seq <= upto. The caller closes it.
func (c *Counters) Snapshot(ctx context.Context, id string, since, upto uint64) (io.ReadCloser, error) {
	to, err := c.target(id)
	if err != nil {
		return nil, err
	}
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "upto": {strconv.FormatUint(upto, 10)}}
	resp, err := send(ctx, c.client, c.token, http.MethodGet, to, "/internal/snapshot?"+q.Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Install streams a snapshot into the sync session syncID of a counter that
// joined at joinSeq and returns the rows it merged.
func (c *Counters) Install(ctx context.Context, id, syncID string, joinSeq uint64, snapshot io.Reader) (int, error) {
	to, err := c.target(id)
	if err != nil {
		return 0, err
	}
	path := "/internal/install?" + url.Values{"join": {strconv.FormatUint(joinSeq, 10)}, "sync": {syncID}}.Encode()
	resp, err := send(ctx, c.client, c.token, http.MethodPost, to, path, snapshot, "application/x-ndjson")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var ir wire.InstallResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(&ir); err != nil {
		return 0, fmt.Errorf("decode answer of install into %s: %w", id, err)
	}
	return ir.Rows, nil
}

// Coordinator is the counters' client of the coordinator's internal API.
type Coordinator struct {
	client *http.Client
	base   string
	token  string
}

// NewCoordinator returns a client of the coordinator's internal API at
// base, authenticated with the cluster token (none when empty).
func NewCoordinator(client *http.Client, base, token string) *Coordinator {
	if client == nil {
		panic("remote.NewCoordinator: nil client")
	}
	return &Coordinator{client: client, base: base, token: token}
}

// Register announces the counter with its status.
func (c *Coordinator) Register(ctx context.Context, st wire.Status) (wire.RegisterResponse, error) {
	var resp wire.RegisterResponse
	err := call(ctx, c.client, c.token, http.MethodPost, target{base: c.base}, "/internal/register", wire.RegisterRequest{Status: st}, &resp)
	return resp, err
}
