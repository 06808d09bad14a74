package counter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// maxDecisionBytes bounds the body of commit, abort and join requests.
const maxDecisionBytes = 64 << 10

// maxSnapshotLine bounds one line of a snapshot stream: a row holds two
// fields of at most wire.MaxFieldBytes, each escaped to at most 6 bytes a byte.
const maxSnapshotLine = 16 << 10

// installChunk is how many snapshot rows are merged per lock hold, so rounds
// keep flowing while a large snapshot installs.
const installChunk = 4096

// writeError maps an error to the counter's answer. Protocol refusals are
// 409 with their code (wire.IsRefusal); an answer about the request itself
// is 4xx with another code.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, wire.CodeInternal
	switch {
	case errors.Is(err, httpserver.ErrTooLarge):
		status, code = http.StatusRequestEntityTooLarge, wire.CodeTooLarge
	case errors.Is(err, errReadBody):
		status, code = http.StatusRequestTimeout, wire.CodeTimeout
	case errors.Is(err, errBadRequest):
		status, code = http.StatusBadRequest, wire.CodeInvalid
	case errors.Is(err, ledger.ErrStaleEpoch):
		status, code = http.StatusConflict, wire.CodeStaleEpoch
	case errors.Is(err, ledger.ErrNotMember), errors.Is(err, ledger.ErrNotReady):
		status, code = http.StatusConflict, wire.CodeNotReady
	case errors.Is(err, ledger.ErrBehind):
		status, code = http.StatusConflict, wire.CodeBehind
	case errors.Is(err, ledger.ErrOutOfOrder):
		status, code = http.StatusConflict, wire.CodeVotedNo
	case errors.Is(err, ledger.ErrUnknownRound):
		status, code = http.StatusConflict, wire.CodeUnknownRound
	case errors.Is(err, ledger.ErrSyncMismatch):
		status, code = http.StatusConflict, wire.CodeSyncMismatch
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	httpserver.WriteError(w, status, code, msg)
}

var (
	errBadRequest = errors.New("bad request")
	// errReadBody: the body could not be read (cut, too slow). That is the
	// transport's failure, not a malformed request: answered 408.
	errReadBody = errors.New("read body")
)

func badRequest(err error) error { return fmt.Errorf("%w: %w", errBadRequest, err) }

// readBody reads a size-limited body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := httpserver.ReadBody(w, r, limit)
	if err != nil && !errors.Is(err, httpserver.ErrTooLarge) {
		err = fmt.Errorf("%w: %w", errReadBody, err)
	}
	return body, err
}

// readRequest reads a size-limited body and decodes it with decode; a
// body that does not decode is the caller's error.
func readRequest[T any](w http.ResponseWriter, r *http.Request, limit int64, decode func([]byte) (T, error)) (T, error) {
	var zero T
	body, err := readBody(w, r, limit)
	if err != nil {
		return zero, err
	}
	req, err := decode(body)
	if err != nil {
		return zero, badRequest(err)
	}
	return req, nil
}

func queryUint(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0, badRequest(fmt.Errorf("query parameter %s must be an unsigned integer", name))
	}
	return v, nil
}

func queryTenant(r *http.Request) (string, error) {
	t := r.URL.Query().Get("tenant")
	if err := wire.CheckField("tenant", t); err != nil {
		return "", badRequest(err)
	}
	return t, nil
}

func handleHealth() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, wire.HealthResponse{Status: "ok"})
	}
}

func handleStatus(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, svc.Status())
	}
}

func handleLocalCount(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := queryTenant(r)
		if err != nil {
			writeError(w, err)
			return
		}
		var resp wire.LocalCountResponse
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			resp.Count, resp.Last, err = l.LocalCount(tenantID)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, resp)
	}
}

func handlePrepare(logger *slog.Logger, svc *Service, maxBodyBytes int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readRequest(w, r, maxBodyBytes, wire.DecodePrepare)
		if err != nil {
			writeError(w, err)
			return
		}
		var vote wire.Vote
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			vote, err = l.Prepare(req)
			return err
		})
		logger.Debug("prepare", "round", req.Round.String(), "tx_id", req.Round.TxID, "items", len(req.Items), "err", err)
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, vote)
	}
}

func handleCommit(logger *slog.Logger, svc *Service) http.HandlerFunc {
	return handleDecision(logger, svc, "commit", (*ledger.Ledger).Commit)
}

func handleAbort(logger *slog.Logger, svc *Service) http.HandlerFunc {
	return handleDecision(logger, svc, "abort", (*ledger.Ledger).Abort)
}

func handleDecision(logger *slog.Logger, svc *Service, name string, apply func(*ledger.Ledger, wire.DecisionRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readRequest(w, r, maxDecisionBytes, wire.DecodeDecision)
		if err != nil {
			writeError(w, err)
			return
		}
		err = svc.with(func(l *ledger.Ledger) error { return apply(l, req) })
		logger.Debug(name, "round", req.Round.String(), "tx_id", req.Round.TxID, "err", err)
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleCount(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := queryTenant(r)
		if err != nil {
			writeError(w, err)
			return
		}
		epoch, err := queryUint(r, "epoch")
		if err != nil {
			writeError(w, err)
			return
		}
		fence, err := queryUint(r, "fence")
		if err != nil {
			writeError(w, err)
			return
		}
		if epoch > wire.MaxEpoch || fence > wire.MaxSeq {
			writeError(w, badRequest(errors.New("epoch or fence out of range")))
			return
		}
		var resp wire.FencedCountResponse
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			resp.Count, resp.At, err = l.CountAt(epoch, fence, tenantID)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, resp)
	}
}

func handleIDs(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := queryTenant(r)
		if err != nil {
			writeError(w, err)
			return
		}
		var ids []string
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			ids, err = l.IDs(tenantID)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		if ids == nil {
			ids = []string{}
		}
		httpserver.WriteJSON(w, http.StatusOK, ids)
	}
}

func handleJoin(logger *slog.Logger, svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readRequest(w, r, maxDecisionBytes, wire.DecodeJoin)
		if err != nil {
			writeError(w, err)
			return
		}
		var resp wire.JoinResponse
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			resp, err = l.Join(req)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		logger.Info("joined the write set", "join_seq", req.Last.Round.Seq, "complete", resp.Complete, "since", resp.Since)
		httpserver.WriteJSON(w, http.StatusOK, resp)
	}
}

func handleSnapshot(logger *slog.Logger, svc *Service, syncTimeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		since, err := queryUint(r, "since")
		if err != nil {
			writeError(w, err)
			return
		}
		upto, err := queryUint(r, "upto")
		if err != nil {
			writeError(w, err)
			return
		}
		var cursor *ledger.SnapshotCursor
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			cursor, err = l.StartSnapshot(since, upto)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		defer cursor.Close()
		httpserver.ExtendDeadlines(w, syncTimeout) // the only long answer
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		sw, _ := wire.NewSnapshotWriter(bw, since, upto) // a failed write shows in the next ones
		// Rows come from the engine snapshot the cursor holds, without the
		// lock, so rounds go on while a large snapshot streams; between
		// chunks the lock is taken only to see that no join cut it.
		var rows []wire.SnapshotEntry
		for done := false; !done; {
			err := svc.with(func(l *ledger.Ledger) error { return l.CheckSnapshot(cursor) })
			if err == nil {
				rows, done, err = cursor.Next(installChunk, rows[:0])
			}
			if err != nil {
				// No trailer: the installer sees a cut stream and retries.
				logger.Warn("snapshot stream cut", "err", err)
				return
			}
			for _, row := range rows {
				if err := sw.Row(row); err != nil {
					logger.Warn("snapshot stream cut", "err", err)
					return
				}
			}
		}
		_ = sw.End()
		if err := bw.Flush(); err != nil {
			logger.Warn("snapshot stream cut", "err", err)
		}
	}
}

// snapshotLine decodes any line of a snapshot stream.
type snapshotLine struct {
	wire.SnapshotHeader
	wire.SnapshotEntry
	wire.SnapshotTrailer
}

func handleInstall(logger *slog.Logger, svc *Service, syncTimeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		joinSeq, err := queryUint(r, "join")
		if err != nil {
			writeError(w, err)
			return
		}
		syncID := r.URL.Query().Get("sync")
		if syncID == "" || len(syncID) > wire.MaxTokenBytes {
			writeError(w, badRequest(errors.New("query parameter sync must name the sync session")))
			return
		}
		httpserver.ExtendDeadlines(w, syncTimeout) // the only long request
		n, err := install(svc, syncID, joinSeq, r.Body)
		if err != nil {
			writeError(w, err)
			return
		}
		logger.Info("snapshot installed", "join_seq", joinSeq, "rows", n)
		httpserver.WriteJSON(w, http.StatusOK, wire.InstallResponse{Rows: n})
	}
}

// decodeRowFast decodes the one shape of row a source writes,
// {"t":"…","i":"…","s":N}, with strings that need no unescaping; it
// reports false for anything else, which the strict decoder then takes.
// What it accepts, the strict decoder decodes the same (FuzzDecodeSnapshotLine
// checks it), at a tenth of the cost: a full snapshot is millions of rows.
func decodeRowFast(data []byte) (wire.SnapshotEntry, bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"t":`))
	if !ok {
		return wire.SnapshotEntry{}, false
	}
	tenantID, rest, ok := plainJSONString(rest)
	if !ok {
		return wire.SnapshotEntry{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"i":`)); !ok {
		return wire.SnapshotEntry{}, false
	}
	id, rest, ok := plainJSONString(rest)
	if !ok {
		return wire.SnapshotEntry{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"s":`)); !ok {
		return wire.SnapshotEntry{}, false
	}
	digits, ok := bytes.CutSuffix(rest, []byte("}"))
	if !ok || len(digits) == 0 || len(digits) > 20 || (digits[0] == '0' && len(digits) > 1) {
		return wire.SnapshotEntry{}, false
	}
	var seq uint64
	for _, c := range digits {
		if c < '0' || c > '9' || seq > (math.MaxUint64-uint64(c-'0'))/10 {
			return wire.SnapshotEntry{}, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	return wire.SnapshotEntry{Tenant: tenantID, ID: id, Seq: seq}, true
}

// plainJSONString reads a JSON string at the start of b whose content is
// valid UTF-8 with no escape and no control character, and returns it and
// what follows.
func plainJSONString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 {
		return "", nil, false
	}
	s := b[1 : 1+end]
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return "", nil, false
		}
	}
	if !utf8.Valid(s) {
		return "", nil, false
	}
	return string(s), b[2+end:], true
}

// decodeSnapshotLine decodes one line of a snapshot stream strictly.
func decodeSnapshotLine(data []byte) (snapshotLine, error) {
	if row, ok := decodeRowFast(data); ok {
		return snapshotLine{SnapshotEntry: row}, nil
	}
	var line snapshotLine
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&line); err != nil {
		return snapshotLine{}, err
	}
	return line, nil
}

// install merges a snapshot stream into the sync session syncID in chunks
// and finishes the sync once the trailer proves the stream complete; a
// stream of a session that a later join superseded is refused at its next
// chunk. A stream cut short leaves the session
// open; merging is idempotent, so the coordinator may send it again. Each
// line is bounded (maxSnapshotLine) and each row checked; the stream as a
// whole is bounded by the sync's deadline.
func install(svc *Service, syncID string, joinSeq uint64, body io.Reader) (int, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxSnapshotLine)
	next := func() (snapshotLine, error) {
		if !sc.Scan() {
			err := sc.Err()
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return snapshotLine{}, err
		}
		return decodeSnapshotLine(sc.Bytes())
	}
	head, err := next()
	if err != nil {
		return 0, badRequest(fmt.Errorf("snapshot header: %w", err))
	}
	if head.Upto > joinSeq {
		return 0, badRequest(fmt.Errorf("snapshot is up to %d, past the join point %d", head.Upto, joinSeq))
	}
	if err := svc.with(func(l *ledger.Ledger) error { return l.BeginInstall(syncID, joinSeq) }); err != nil {
		return 0, err
	}
	merge := func(rows []wire.SnapshotEntry) error {
		return svc.with(func(l *ledger.Ledger) error { return l.Merge(syncID, joinSeq, rows) })
	}
	rows := make([]wire.SnapshotEntry, 0, installChunk)
	n := 0
	for {
		line, err := next()
		if err != nil {
			return n, badRequest(fmt.Errorf("snapshot cut after %d rows: %w", n+len(rows), err))
		}
		if line.End {
			if line.Count != n+len(rows) {
				return n, badRequest(fmt.Errorf("snapshot trailer says %d rows, got %d", line.Count, n+len(rows)))
			}
			if err := merge(rows); err != nil {
				return n, err
			}
			n += len(rows)
			return n, svc.with(func(l *ledger.Ledger) error { return l.FinishSync(syncID, joinSeq) })
		}
		if err := wire.CheckSnapshotEntry(line.SnapshotEntry); err != nil {
			return n, badRequest(fmt.Errorf("snapshot row %d: %w", n+len(rows), err))
		}
		rows = append(rows, line.SnapshotEntry)
		if len(rows) == installChunk {
			if err := merge(rows); err != nil {
				return n, err
			}
			n += len(rows)
			rows = rows[:0]
		}
	}
}
