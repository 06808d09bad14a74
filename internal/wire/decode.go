package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Bounds of the internal API's fields. A request past any of them is
// malformed: the receiver answers 400 and changes nothing.
const (
	// MaxURLBytes bounds a counter's URL (its id).
	MaxURLBytes = 256
	// MaxTokenBytes bounds incarnations, cluster ids and transaction ids (uuids).
	MaxTokenBytes = 64
	// MaxView bounds the participant list of a round.
	MaxView = 1024
	// MaxEpoch bounds an epoch: epochs start at the Unix time, so this
	// leaves room for every restart there will ever be, and an epoch can
	// always be incremented without overflow.
	MaxEpoch = 1 << 48
	// MaxSeq bounds a round's place in the commit order.
	MaxSeq = 1 << 62
)

// CheckCounterID checks a counter's identity: the name its data directory
// was given on first start, 1 to MaxTokenBytes printable ASCII bytes.
func CheckCounterID(s string) error {
	if s == "" || len(s) > MaxTokenBytes {
		return fmt.Errorf("counter id must be 1 to %d bytes", MaxTokenBytes)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("counter id %q must be printable ASCII", truncate(s))
		}
	}
	return nil
}

// CheckCounterURL checks a counter's URL, where it is reached now: an
// absolute http(s) URL with a host and nothing else (no user, path, query
// or fragment).
func CheckCounterURL(s string) error {
	if len(s) > MaxURLBytes {
		return fmt.Errorf("URL is longer than %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("URL %q does not parse", truncate(s))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL %q must be http or https", truncate(s))
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("URL %q has no host", truncate(s))
	case u.User != nil:
		return fmt.Errorf("URL %q must not hold user information", truncate(s))
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "", strings.Contains(s, "#"):
		return fmt.Errorf("URL %q must not have a path, query or fragment", truncate(s))
	}
	return nil
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	// Only the end may follow. (It was "no token may follow", which let
	// bytes that are no token, like ",x", through: the fuzz target of the
	// prepare's fast path found it.)
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON: data after the value")
	}
	return nil
}

func checkToken(name, s string, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%s must not be empty", name)
	case len(s) > MaxTokenBytes:
		return fmt.Errorf("%s is longer than %d bytes", name, MaxTokenBytes)
	}
	return nil
}

func checkEpoch(name string, epoch uint64) error {
	if epoch > MaxEpoch {
		return fmt.Errorf("%s %d is past the largest epoch %d", name, epoch, uint64(MaxEpoch))
	}
	return nil
}

func (r RoundID) check(name string) error {
	if err := checkEpoch(name+" epoch", r.Epoch); err != nil {
		return err
	}
	if r.Seq > MaxSeq {
		return fmt.Errorf("%s seq %d is past the largest seq", name, r.Seq)
	}
	return checkToken(name+" tx_id", r.TxID, false)
}

func checkSeq(name string, seq uint64) error {
	if seq > MaxSeq {
		return fmt.Errorf("%s %d is past the largest seq", name, seq)
	}
	return nil
}

func checkView(view []string) error {
	if len(view) > MaxView {
		return fmt.Errorf("view lists %d counters, at most %d", len(view), MaxView)
	}
	for i, id := range view {
		if err := CheckCounterID(id); err != nil {
			return fmt.Errorf("view %d: %w", i, err)
		}
	}
	return nil
}

// DecodePrepare decodes and checks a prepare.
func DecodePrepare(data []byte) (PrepareRequest, error) {
	req, ok := decodePrepareFast(data)
	if !ok {
		req = PrepareRequest{}
		if err := decodeStrict(data, &req); err != nil {
			return PrepareRequest{}, err
		}
	}
	errs := []error{req.Round.check("round"), checkSeq("stable", req.Stable), checkView(req.View)}
	if req.Round.Seq == 0 {
		errs = append(errs, errors.New("round seq must be at least 1"))
	}
	if req.Prev != nil {
		errs = append(errs, req.Prev.Round.check("prev"))
	}
	for i, it := range req.Items {
		if err := CheckField("id", it.ID); err != nil {
			errs = append(errs, fmt.Errorf("item %d: %w", i, err))
			break
		}
		if err := CheckField("tenant", it.Tenant); err != nil {
			errs = append(errs, fmt.Errorf("item %d: %w", i, err))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return PrepareRequest{}, err
	}
	return req, nil
}

// prepareItems separates a prepare's head from its items in what
// EncodePrepare writes.
const prepareItems = `,"items":[`

// decodePrepareFast decodes a prepare as EncodePrepare writes it: the head,
// decoded strictly, then prepareItems, items of the shape decodeItemsFast
// takes, and the closing brace. It reports false for anything else, which
// the strict decoder then decodes (a fuzz test checks both agree on what
// this accepts). The items are most of a prepare, and most of a counter's
// decoding time went to them.
func decodePrepareFast(data []byte) (PrepareRequest, bool) {
	i := bytes.Index(data, []byte(prepareItems))
	if i < 0 || data[len(data)-1] != '}' || len(bytes.TrimSpace(data[:i])) < 2 {
		// (A head of "{" alone would decode as {} here, while "{," is
		// not JSON: the fuzz target found it.)
		return PrepareRequest{}, false
	}
	list := data[i+len(prepareItems)-1 : len(data)-1]
	if !utf8.Valid(list) {
		return PrepareRequest{}, false // encoding/json would replace the bad bytes
	}
	items, ok := decodeItemsFast(list, math.MaxInt)
	if !ok {
		return PrepareRequest{}, false
	}
	head := append(append(make([]byte, 0, i+1), data[:i]...), '}')
	var h prepareHead
	if decodeStrict(head, &h) != nil {
		return PrepareRequest{}, false
	}
	return PrepareRequest{Round: h.Round, Stable: h.Stable, Prev: h.Prev, View: h.View, Items: items}, true
}

// prepareHead is a prepare without its items, encoded before them.
type prepareHead struct {
	Round  RoundID   `json:"round"`
	Stable uint64    `json:"stable"`
	Prev   *Decision `json:"prev,omitempty"`
	View   []string  `json:"view"`
}

// EncodePrepare encodes a prepare whose items are those of batches, in
// order; req.Items is ignored. The result is what every participant gets.
func EncodePrepare(req PrepareRequest, batches []Batch) []byte {
	head, err := json.Marshal(prepareHead{Round: req.Round, Stable: req.Stable, Prev: req.Prev, View: req.View})
	if err != nil {
		panic("wire: encode prepare: " + err.Error()) // plain values always encode
	}
	size := len(head) + len(`,"items":[]`) + len(batches)
	for _, b := range batches {
		size += len(b.JSON)
	}
	out := make([]byte, 0, size)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"items":[`...)
	first := true
	for _, b := range batches {
		if len(b.JSON) == 0 {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		out = append(out, b.JSON...)
		first = false
	}
	return append(out, "]}"...)
}

// PrepareOverhead bounds the bytes of a prepare other than its items, for
// a view of at most views counters: what a round must leave free of items.
func PrepareOverhead(views int) int {
	// Round and prev: two round ids of at most ~110 bytes each; stable and
	// the field names: under 100. Each view entry: a quoted counter id
	// (printable ASCII, escaped at most 6 bytes per byte) and a comma.
	return 512 + views*(6*MaxTokenBytes+3)
}

// DecodeDecision decodes and checks a commit or abort.
func DecodeDecision(data []byte) (DecisionRequest, error) {
	var req DecisionRequest
	if err := decodeStrict(data, &req); err != nil {
		return DecisionRequest{}, err
	}
	if err := errors.Join(req.Round.check("round"), checkSeq("stable", req.Stable)); err != nil {
		return DecisionRequest{}, err
	}
	return req, nil
}

// DecodeJoin decodes and checks a join.
func DecodeJoin(data []byte) (JoinRequest, error) {
	var req JoinRequest
	if err := decodeStrict(data, &req); err != nil {
		return JoinRequest{}, err
	}
	err := errors.Join(checkEpoch("epoch", req.Epoch), checkToken("cluster_id", req.ClusterID, true), checkToken("sync_id", req.SyncID, true),
		req.Last.Round.check("last"), req.Committed.check("committed"), checkSeq("stable", req.Stable), req.Base.check("base"))
	if err != nil {
		return JoinRequest{}, err
	}
	return req, nil
}

// DecodeRegister decodes and checks a registration.
func DecodeRegister(data []byte) (RegisterRequest, error) {
	var req RegisterRequest
	if err := decodeStrict(data, &req); err != nil {
		return RegisterRequest{}, err
	}
	if err := req.Status.Check(); err != nil {
		return RegisterRequest{}, err
	}
	return req, nil
}

// Check checks a counter's status report.
func (s Status) Check() error {
	errs := []error{
		CheckCounterID(s.ID),
		CheckCounterURL(s.URL),
		checkToken("incarnation", s.Incarnation, true),
		checkToken("cluster_id", s.ClusterID, false),
		checkEpoch("epoch", s.Epoch),
		checkEpoch("fence", s.Fence),
		s.Last.check("last"),
		s.Committed.check("committed"),
		s.Holds.check("holds"),
		checkSeq("stable", s.Stable),
		checkView(s.View),
		s.ViewRound.check("view_round"),
	}
	switch s.Mode {
	case ModeIdle, ModeSyncing, ModeReady:
	default:
		errs = append(errs, fmt.Errorf("mode %q is not idle, syncing or ready", truncate(string(s.Mode))))
	}
	if s.Staged != nil {
		errs = append(errs, s.Staged.check("staged"))
	}
	if s.Tenants < 0 || s.Items < 0 {
		errs = append(errs, errors.New("tenants and items must not be negative"))
	}
	return errors.Join(errs...)
}

// CheckSnapshotEntry checks one row of a snapshot stream.
func CheckSnapshotEntry(e SnapshotEntry) error {
	return errors.Join(CheckField("tenant", e.Tenant), CheckField("id", e.ID), checkSeq("seq", e.Seq))
}
