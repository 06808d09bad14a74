// Package wire holds the JSON types of the public API and of the internal
// API between the coordinator and the counters, shared by servers and clients.
package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Item is one element of the public POST /items body.
type Item struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
}

// CountResponse answers GET /items/{tenantID}/count.
type CountResponse struct {
	Count int64 `json:"count"`
}

// FencedCountResponse answers a counter's fenced read: the tenant's count
// as of stable seq At (at least the fence asked for).
type FencedCountResponse struct {
	Count int64  `json:"count"`
	At    uint64 `json:"at"`
}

// Vote is a counter's yes to a prepare: how many of the round's ids are
// new to it, per tenant (tenants with none are left out). Every complete
// counter holds the same ids, so every live voter reports the same.
type Vote struct {
	Added map[string]int64 `json:"added,omitempty"`
}

// MessageResponse is the success body of POST /items, compatible with the
// original API.
type MessageResponse struct {
	Message string `json:"message"`
}

// Error is the body of every non-2xx response of both services.
type Error struct {
	Message string `json:"message"`
	Code    string `json:"code"`
}

// Error codes: stable, snake_case, for programs.
const (
	CodeInvalid        = "invalid_request"
	CodeTooLarge       = "too_large"
	CodeTooManyItems   = "too_many_items"
	CodeNotFound       = "not_found"
	CodeMethod         = "method_not_allowed"
	CodeUnavailable    = "unavailable"     // nothing was applied; safe to retry
	CodeOverloaded     = "overloaded"      // shed before anything was done; retry after Retry-After
	CodeOutcomeUnknown = "outcome_unknown" // may or may not be applied; retrying the same ids is safe
	CodeTimeout        = "timeout"         // a read did not finish in time; nothing changed
	CodeInternal       = "internal"

	// Codes of the internal API.
	CodeUnauthorized    = "unauthorized"      // no or a wrong cluster token: nothing was done
	CodeTooManyCounters = "too_many_counters" // a registration past MAX_COUNTERS

	// Protocol refusals: a counter understood the request and says no. Each
	// means the counter cannot take part as it stands, so the coordinator
	// takes it out of the write set until it resyncs. Any other non-2xx
	// answer is about the request, not the counter, and never does.
	CodeVotedNo      = "voted_no"      // the counter votes no on a round
	CodeStaleEpoch   = "stale_epoch"   // the request comes from an older coordinator
	CodeBehind       = "behind"        // the counter has not applied the requested position
	CodeNotReady     = "not_ready"     // the counter has no complete copy of the data
	CodeWrongCounter = "wrong_counter" // the address now answers as another counter
	CodeUnknownRound = "unknown_round" // commit of a round the counter has not prepared
	CodeSyncMismatch = "sync_mismatch" // a snapshot for a sync session that is not current
)

// CounterIDHeader names the counter a call is meant for. A counter refuses
// a call meant for another (CodeWrongCounter): after a restart, an address
// may belong to a counter with other data.
const CounterIDHeader = "X-Counter-Id"

// IsKnownCode reports whether code is one of the codes above.
func IsKnownCode(code string) bool {
	switch code {
	case CodeInvalid, CodeTooLarge, CodeTooManyItems, CodeNotFound, CodeMethod, CodeUnavailable, CodeOverloaded,
		CodeOutcomeUnknown, CodeTimeout, CodeInternal, CodeUnauthorized, CodeTooManyCounters:
		return true
	}
	return IsRefusal(code)
}

// IsRefusal reports whether code is a protocol refusal.
func IsRefusal(code string) bool {
	switch code {
	case CodeVotedNo, CodeStaleEpoch, CodeBehind, CodeNotReady, CodeUnknownRound, CodeSyncMismatch, CodeWrongCounter:
		return true
	}
	return false
}

// RoundID names one 2PC round: the coordinator's epoch and the round's place
// in the commit order. Seq alone orders rounds; Epoch tells which coordinator
// decided it, so a seq reused after a coordinator restart is told apart.
type RoundID struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// TxID is the round's unique transaction id (a uuid), for logs and as a
	// check: a counter applies a decision only to the very round it staged.
	TxID string `json:"tx_id,omitempty"`
}

// IsZero reports whether r is the position before any round.
func (r RoundID) IsZero() bool { return r.Epoch == 0 && r.Seq == 0 }

// Less orders round ids by epoch, then seq. A later coordinator resumed
// from every round that could have been acknowledged, so its rounds
// supersede any of an earlier epoch, whatever their seq: a seq of an older
// epoch above the resume point belongs to a round that was aborted.
func (r RoundID) Less(o RoundID) bool {
	if r.Epoch != o.Epoch {
		return r.Epoch < o.Epoch
	}
	return r.Seq < o.Seq
}

func (r RoundID) String() string { return fmt.Sprintf("%d.%d", r.Epoch, r.Seq) }

// Decision is the outcome of a round.
type Decision struct {
	Round  RoundID `json:"round"`
	Commit bool    `json:"commit"`
}

// PrepareRequest is phase one of a round, sent to every participant.
type PrepareRequest struct {
	Round RoundID `json:"round"`
	// Stable is the highest seq the coordinator knows every participant of
	// its round has committed; counters expose state up to it.
	Stable uint64 `json:"stable"`
	// Prev is the decision of the previous round, so a counter that missed
	// its commit or abort message resolves it here.
	Prev *Decision `json:"prev,omitempty"`
	// View lists the ids of every participant of this round. A restarted
	// coordinator reads it back to know whom it must hear from.
	View  []string `json:"view"`
	Items []Item   `json:"items"`
}

// DecisionRequest is phase two of a round: commit or abort.
type DecisionRequest struct {
	Round  RoundID `json:"round"`
	Stable uint64  `json:"stable"`
}

// Mode is a counter's own view of its data.
type Mode string

// Counter modes.
const (
	ModeIdle    Mode = "idle"    // not joined: holds nothing the coordinator may use
	ModeSyncing Mode = "syncing" // receives rounds, waits for its snapshot
	ModeReady   Mode = "ready"   // holds a complete copy up to its last round
)

// Status is a counter's report of itself: answered by GET /health and sent
// with every registration. A restarted coordinator rebuilds the commit order
// from these reports.
type Status struct {
	// ID is the counter's identity, kept in its data directory: a counter
	// that restarts, or moves to another address, keeps it.
	ID string `json:"id"`
	// URL is where the counter is reached now.
	URL         string `json:"url"`
	Incarnation string `json:"incarnation"`
	Mode        Mode   `json:"mode"`
	ClusterID   string `json:"cluster_id,omitempty"`
	// Epoch is the highest coordinator epoch of a message it accepted.
	Epoch uint64 `json:"epoch"`
	// Fence is the epoch a coordinator told it at registration: it refuses
	// every message of a lower epoch.
	Fence uint64  `json:"fence"`
	Last  RoundID `json:"last"`
	// LastCommitted tells whether Last was committed or aborted.
	LastCommitted bool `json:"last_committed"`
	// Committed is the last committed round: with the cluster id it names
	// the data the counter holds (aborted rounds carry none). While it
	// syncs, it is the round the sync brings it to.
	Committed RoundID `json:"committed"`
	// Holds is the last committed round through which its data on disk is
	// a complete copy: Committed when ready; while syncing, what it held
	// when it joined (zero when that join dropped some of it).
	Holds  RoundID `json:"holds"`
	Stable uint64  `json:"stable"`
	// Staged is the round the counter voted yes on and has not seen decided.
	Staged *RoundID `json:"staged,omitempty"`
	// View is the participant list of the latest prepare it received.
	View      []string `json:"view,omitempty"`
	ViewRound RoundID  `json:"view_round"`
	Tenants   int      `json:"tenants"`
	Items     int      `json:"items"`
}

// RegisterRequest is sent by a counter to the coordinator at start and then
// periodically, so a restarted coordinator learns of it.
type RegisterRequest struct {
	Status Status `json:"status"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	// Epoch is the coordinator's epoch (while it recovers: the epoch it
	// will run at, at least). The counter adopts it as its fence.
	Epoch uint64 `json:"epoch"`
	State string `json:"state"`
}

// JoinRequest puts a counter into the write set at the coordinator's current
// position. The counter keeps the data it can prove it shares with the
// cluster and reports from which seq it needs a snapshot.
type JoinRequest struct {
	Epoch     uint64 `json:"epoch"`
	ClusterID string `json:"cluster_id"`
	// SyncID names this sync session (a uuid); the snapshot installed
	// into it must name it too, so a stream of an older session can never
	// complete a newer one.
	SyncID string `json:"sync_id"`
	// Last is the coordinator's last resolved round: the join point.
	Last Decision `json:"last"`
	// Committed is the coordinator's last committed round.
	Committed RoundID `json:"committed"`
	Stable    uint64  `json:"stable"`
	// Base is the committed round the coordinator's epoch resumed from:
	// every round of Base's epoch up to it is in the history.
	Base RoundID `json:"base"`
}

// JoinResponse tells the coordinator what the counter still needs.
type JoinResponse struct {
	Incarnation string `json:"incarnation"`
	// Complete is true when the counter already holds every round up to the
	// join point; otherwise it needs the snapshot rows with
	// Since < seq <= JoinRequest.Committed.Seq.
	Complete bool   `json:"complete"`
	Since    uint64 `json:"since"`
}

// SnapshotHeader is the first line of a snapshot stream.
type SnapshotHeader struct {
	Since uint64 `json:"since"`
	Upto  uint64 `json:"upto"`
}

// SnapshotEntry is one item of a snapshot stream, with the seq of the round
// that first added it.
type SnapshotEntry struct {
	Tenant string `json:"t"`
	ID     string `json:"i"`
	Seq    uint64 `json:"s"`
}

// SnapshotTrailer ends a snapshot stream; a stream without it was cut short.
type SnapshotTrailer struct {
	End   bool `json:"end"`
	Count int  `json:"count"`
}

// CounterInfo is one row of the coordinator's GET /counters. It names the
// counter by CounterName, not by its internal URL.
type CounterInfo struct {
	Name string `json:"name"`
	// ID and URL (the counter's identity and where it is reached) are only
	// in the internal API's GET /internal/counters.
	ID          string `json:"id,omitempty"`
	URL         string `json:"url,omitempty"`
	Incarnation string `json:"incarnation"`
	State       string `json:"state"`
	Applied     uint64 `json:"applied"`
	Failures    int    `json:"failures"`
	LastCheck   string `json:"last_check,omitempty"`
	// Healthy tells whether the last health check succeeded. Its error
	// names internal addresses: it is in the coordinator's log and, as
	// LastError, only in the internal API.
	Healthy   bool   `json:"healthy"`
	LastError string `json:"last_error,omitempty"`
	// LastSync is how the counter was last brought up to date, once it was.
	LastSync *SyncInfo `json:"last_sync,omitempty"`
}

// SyncInfo describes a finished sync: the rows the counter received, all
// with seq above Since (0: a full copy; above: only the rounds it missed).
type SyncInfo struct {
	Rows  int    `json:"rows"`
	Since uint64 `json:"since"`
}

// InstallResponse answers a snapshot install: the rows it merged.
type InstallResponse struct {
	Rows int `json:"rows"`
}

// CounterName is the public name of the counter whose id is id: an HMAC of
// the id keyed with the cluster token, stable for as long as both are.
// Without the token it cannot be told from a guessed id. (Without a token,
// insecure, it is a plain hash of a random id.)
func CounterName(id, token string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(id))
	return "counter-" + hex.EncodeToString(mac.Sum(nil)[:5])
}

// CountersResponse answers the coordinator's GET /counters.
type CountersResponse struct {
	Epoch      uint64        `json:"epoch"`
	Last       RoundID       `json:"last"`
	Stable     uint64        `json:"stable"`
	Recovering bool          `json:"recovering"`
	Counters   []CounterInfo `json:"counters"`
}

// StatusResponse answers GET /status.json on the coordinator: what the
// status page (GET /status) shows. Like GET /counters it names counters
// only by their public names, and their errors only by kind.
type StatusResponse struct {
	Now string `json:"now"`
	// Phase is "serving", or "recovering" while the coordinator rebuilds
	// its commit order (it answers 503 to clients meanwhile).
	Phase    string          `json:"phase"`
	Epoch    uint64          `json:"epoch"`
	Last     uint64          `json:"last"`
	Stable   uint64          `json:"stable"`
	Counters []StatusCounter `json:"counters"`
	// Interval is the length of each history sample, in seconds.
	Interval float64        `json:"interval_seconds"`
	History  []StatusSample `json:"history"` // oldest first
	Events   []StatusEvent  `json:"events"`  // newest first
}

// StatusCounter is one counter on the status page.
type StatusCounter struct {
	CounterInfo
	// Lag is how many rounds the counter's last applied round is behind
	// the stable watermark.
	Lag uint64 `json:"lag"`
	// Error names the kind of the last health check's error ("timeout",
	// "connection refused", ...), never its address or message.
	Error string `json:"error,omitempty"`
}

// StatusSample is the rates over one interval ending at At.
type StatusSample struct {
	At         string  `json:"at"`
	Writes     float64 `json:"writes_per_s"`
	Items      float64 `json:"items_per_s"`
	Reads      float64 `json:"reads_per_s"`
	RoundItems float64 `json:"round_items"`
}

// StatusEvent is one change of a counter's membership.
type StatusEvent struct {
	At      string `json:"at"`
	Counter string `json:"counter"`
	Kind    string `json:"kind"`
	Detail  string `json:"detail,omitempty"`
}

// HealthResponse answers GET /health on the coordinator.
type HealthResponse struct {
	Status string `json:"status"`
}

// LocalCountResponse answers GET /items/{tenantID}/count on a counter: its
// own count including every round it applied, and the last round applied.
type LocalCountResponse struct {
	Count int64   `json:"count"`
	Last  RoundID `json:"last"`
}

// SnapshotWriter writes a snapshot stream: its header, one line per row,
// and the trailer that says it is whole. JSON without HTML escaping.
type SnapshotWriter struct {
	enc  *json.Encoder
	rows int
}

// NewSnapshotWriter writes the header of the rows since < seq <= upto to w.
func NewSnapshotWriter(w io.Writer, since, upto uint64) (*SnapshotWriter, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &SnapshotWriter{enc: enc}, enc.Encode(SnapshotHeader{Since: since, Upto: upto})
}

// Row writes one row.
func (s *SnapshotWriter) Row(e SnapshotEntry) error {
	s.rows++
	return s.enc.Encode(e)
}

// End writes the trailer with the number of rows written.
func (s *SnapshotWriter) End() error { return s.enc.Encode(SnapshotTrailer{End: true, Count: s.rows}) }
