package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault is what a rule does to a matching request.
type Fault int

// Faults a rule can inject.
const (
	// Drop: the request is never delivered; the caller gets an error.
	Drop Fault = iota + 1
	// DropResponse: the request is delivered and handled, the answer is
	// lost; the caller gets an error. The dangerous case: applied but unknown.
	DropResponse
	// Refuse: the request is not delivered; the caller gets a 409 "refused"
	// answer, as if the peer voted no.
	Refuse
	// Delay: the request is delivered after Rule.Delay.
	Delay
	// Duplicate: the request is delivered twice; the caller gets the second answer.
	Duplicate
	// Hold: the request waits until the rule is removed, then is delivered
	// even if the caller gave up meanwhile (a paused process that resumes).
	Hold
	// Reject: the request is not delivered; the caller gets a 400
	// "invalid_request" answer, as if the peer found it malformed.
	Reject
)

// ErrInjected is the error of dropped requests and responses.
var ErrInjected = errors.New("clustertest: injected network fault")

// Rule selects requests by source, destination and path and injects a fault.
type Rule struct {
	// From matches the name of the sending node; empty matches every node.
	From string
	// Host matches the request's host:port; empty matches every host.
	Host string
	// Path matches a path prefix; empty matches every path.
	Path  string
	Fault Fault
	// Delay is the delay of a Delay fault.
	Delay time.Duration
	// Prob is the probability that a matching request is hit; 0 means always.
	Prob float64
}

func (r Rule) matches(from string, req *http.Request) bool {
	return (r.From == "" || r.From == from) && (r.Host == "" || r.Host == req.URL.Host) &&
		strings.HasPrefix(req.URL.Path, r.Path)
}

type rule struct {
	Rule
	released chan struct{} // closed when the rule is removed
}

// Faults is a set of rules applied by the transports it wraps. Safe for
// concurrent use; rules can change while requests are in flight.
type Faults struct {
	mu    sync.Mutex
	rules map[int]*rule
	next  int
	rng   *rand.Rand
	wg    sync.WaitGroup // late deliveries of held requests
}

// NewFaults returns an empty rule set whose probabilities draw from seed.
func NewFaults(seed uint64) *Faults {
	return &Faults{rules: make(map[int]*rule), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Add installs a rule and returns the function that removes it.
func (f *Faults) Add(r Rule) (remove func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	f.rules[id] = &rule{Rule: r, released: make(chan struct{})}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if rr, ok := f.rules[id]; ok {
			close(rr.released)
			delete(f.rules, id)
		}
	}
}

// Clear removes every rule, releasing held requests.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, r := range f.rules {
		close(r.released)
		delete(f.rules, id)
	}
}

// Wait waits for held requests released earlier to be delivered.
func (f *Faults) Wait() { f.wg.Wait() }

// pick returns the first rule that matches and fires, if any.
func (f *Faults) pick(from string, req *http.Request) *rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.next {
		r, ok := f.rules[id]
		if !ok || !r.matches(from, req) {
			continue
		}
		if r.Prob > 0 && f.rng.Float64() >= r.Prob {
			continue
		}
		return r
	}
	return nil
}

// Transport wraps base with the rules, for the calls of the node named from.
func (f *Faults) Transport(from string, base http.RoundTripper) http.RoundTripper {
	return &transport{faults: f, from: from, base: base}
}

type transport struct {
	faults *Faults
	from   string
	base   http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := t.faults.pick(t.from, req)
	if r == nil {
		return t.base.RoundTrip(req)
	}
	switch r.Fault {
	case Drop:
		drainBody(req)
		return nil, ErrInjected
	case DropResponse:
		resp, err := t.base.RoundTrip(req)
		if err == nil {
			drainBody(&http.Request{Body: resp.Body})
		}
		return nil, ErrInjected
	case Refuse:
		return answer(req, http.StatusConflict, `{"message":"injected refusal","code":"voted_no"}`), nil
	case Reject:
		return answer(req, http.StatusBadRequest, `{"message":"injected rejection","code":"invalid_request"}`), nil
	case Delay:
		if err := sleep(req.Context(), r.Delay); err != nil {
			drainBody(req)
			return nil, err
		}
		return t.base.RoundTrip(req)
	case Duplicate:
		if req.GetBody == nil && req.Body != nil {
			return t.base.RoundTrip(req)
		}
		first := req.Clone(req.Context())
		if req.Body != nil {
			first.Body, _ = req.GetBody()
		}
		if resp, err := t.base.RoundTrip(first); err == nil {
			drainBody(&http.Request{Body: resp.Body})
		}
		if req.Body != nil {
			req = req.Clone(req.Context())
			req.Body, _ = req.GetBody()
		}
		return t.base.RoundTrip(req)
	case Hold:
		return t.hold(req, r)
	}
	return t.base.RoundTrip(req)
}

// hold blocks the request until its rule is removed. If the caller gives
// up first, the request is still delivered after the release, late, and
// its answer is thrown away.
func (t *transport) hold(req *http.Request, r *rule) (*http.Response, error) {
	select {
	case <-r.released:
		return t.base.RoundTrip(req)
	case <-req.Context().Done():
	}
	late := req.Clone(context.WithoutCancel(req.Context()))
	if req.Body != nil && req.GetBody != nil {
		late.Body, _ = req.GetBody()
	}
	t.faults.wg.Go(func() {
		<-r.released
		ctx, cancel := context.WithTimeout(late.Context(), 5*time.Second)
		defer cancel()
		if resp, err := t.base.RoundTrip(late.WithContext(ctx)); err == nil {
			drainBody(&http.Request{Body: resp.Body})
		}
	})
	drainBody(req)
	return nil, req.Context().Err()
}

// answer consumes req without delivering it and answers it with status and
// a JSON body, as the peer would have.
func answer(req *http.Request, status int, body string) *http.Response {
	drainBody(req)
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    req,
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func drainBody(req *http.Request) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
}
