// Package chaos is a Jepsen-style test of the whole system in one process:
// a cluster on 127.0.0.1, concurrent clients that add items and read counts
// while a nemesis crashes, pauses, partitions and restarts nodes and drops,
// duplicates and delays messages, and checkers that judge the recorded
// history: a set check (no acknowledged item lost, none that no client
// attempted counted, batches all-or-nothing, every counter converged) and
// linearizability with porcupine, per tenant.
package chaos

import (
	"slices"
	"sync"
	"time"
)

// Kind is an operation's kind.
type Kind int

// Operation kinds.
const (
	Add Kind = iota + 1
	Read
)

// Outcome is what the client learned of an operation.
type Outcome int

// Outcomes.
const (
	// OK: the add was acknowledged, or the read answered.
	OK Outcome = iota + 1
	// Failed: the add was definitely not applied (503 "nothing applied"),
	// or the read failed (reads have no effect).
	Failed
	// Unknown: the add may or may not have been applied (timeout, 504,
	// connection lost).
	Unknown
)

// Op is one client operation with its invocation and completion times on
// the history's clock. Adds carry the ids of one tenant: a request across
// tenants is recorded as one Op per tenant, with the same times, outcome
// and Batch, so each tenant's history stays exact for the per-tenant
// linearizability check, and the batch is checked all-or-nothing as one.
type Op struct {
	Client int
	Kind   Kind
	Tenant string
	IDs    []string
	// Batch links the Ops of one request across tenants; 0 for a request
	// of one tenant.
	Batch   int
	Count   int64 // the read's answer
	Outcome Outcome
	Call    int64
	Return  int64
}

// History records operations from concurrent clients on one monotonic clock.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []Op
}

// NewHistory starts a history's clock.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history clock's reading, in nanoseconds since it started.
func (h *History) Now() int64 { return time.Since(h.start).Nanoseconds() }

// Record adds a completed operation.
func (h *History) Record(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// Ops returns the operations ordered by invocation time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := slices.Clone(h.ops)
	slices.SortStableFunc(ops, func(a, b Op) int {
		switch {
		case a.Call < b.Call:
			return -1
		case a.Call > b.Call:
			return 1
		}
		return 0
	})
	return ops
}
