package counter

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/distributed-counter/distributed-counter/internal/httpserver"
	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// maxDecisionBytes bounds the body of commit, abort and join requests.
const maxDecisionBytes = 64 << 10

// installChunk is how many snapshot rows are merged per lock hold, so rounds
// keep flowing while a large snapshot installs.
const installChunk = 4096

// writeError maps an error to the counter's answer.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, wire.CodeInternal
	switch {
	case errors.Is(err, httpserver.ErrTooLarge):
		status, code = http.StatusRequestEntityTooLarge, wire.CodeTooLarge
	case errors.Is(err, errBadRequest):
		status, code = http.StatusBadRequest, wire.CodeInvalid
	case errors.Is(err, ledger.ErrStaleEpoch):
		status, code = http.StatusConflict, wire.CodeStaleEpoch
	case errors.Is(err, ledger.ErrNotMember), errors.Is(err, ledger.ErrNotReady):
		status, code = http.StatusConflict, wire.CodeNotReady
	case errors.Is(err, ledger.ErrBehind):
		status, code = http.StatusConflict, wire.CodeBehind
	case errors.Is(err, ledger.ErrOutOfOrder):
		status, code = http.StatusConflict, wire.CodeRefused
	case errors.Is(err, ledger.ErrUnknownRound):
		status, code = http.StatusNotFound, wire.CodeUnknownRound
	case errors.Is(err, ledger.ErrSyncMismatch):
		status, code = http.StatusConflict, wire.CodeSyncMismatch
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	httpserver.WriteError(w, status, code, msg)
}

var errBadRequest = errors.New("bad request")

func badRequest(err error) error { return fmt.Errorf("%w: %w", errBadRequest, err) }

func handleHealth(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, svc.Status())
	}
}

func handleLocalCount(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := httpserver.PathValue(r, "tenantID")
		if err != nil {
			writeError(w, badRequest(err))
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
		var req wire.PrepareRequest
		if err := httpserver.ReadJSON(w, r, maxBodyBytes, &req); err != nil {
			writeError(w, badRequest(err))
			return
		}
		err := svc.with(func(l *ledger.Ledger) error { return l.Prepare(req) })
		logger.Debug("prepare", "round", req.Round.String(), "tx_id", req.Round.TxID, "items", len(req.Items), "err", err)
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, svc.Ack())
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
		var req wire.DecisionRequest
		if err := httpserver.ReadJSON(w, r, maxDecisionBytes, &req); err != nil {
			writeError(w, badRequest(err))
			return
		}
		err := svc.with(func(l *ledger.Ledger) error { return apply(l, req) })
		logger.Debug(name, "round", req.Round.String(), "tx_id", req.Round.TxID, "err", err)
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, svc.Ack())
	}
}

func queryUint(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0, badRequest(fmt.Errorf("query parameter %s must be an unsigned integer", name))
	}
	return v, nil
}

func handleCount(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := httpserver.PathValue(r, "tenantID")
		if err != nil {
			writeError(w, badRequest(err))
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
		var n int64
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			n, err = l.Count(epoch, fence, tenantID)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, wire.CountResponse{Count: n})
	}
}

func handleIDs(svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := httpserver.PathValue(r, "tenantID")
		if err != nil {
			writeError(w, badRequest(err))
			return
		}
		var ids []string
		_ = svc.with(func(l *ledger.Ledger) error {
			ids = l.IDs(tenantID)
			return nil
		})
		if ids == nil {
			ids = []string{}
		}
		httpserver.WriteJSON(w, http.StatusOK, ids)
	}
}

func handleJoin(logger *slog.Logger, svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req wire.JoinRequest
		if err := httpserver.ReadJSON(w, r, maxDecisionBytes, &req); err != nil {
			writeError(w, badRequest(err))
			return
		}
		var resp wire.JoinResponse
		err := svc.with(func(l *ledger.Ledger) error {
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

func handleSnapshot(logger *slog.Logger, svc *Service) http.HandlerFunc {
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
		var rows []wire.SnapshotEntry
		err = svc.with(func(l *ledger.Ledger) error {
			var err error
			rows, err = l.Snapshot(since, upto)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		_ = enc.Encode(wire.SnapshotHeader{Since: since, Upto: upto})
		for _, row := range rows {
			if err := enc.Encode(row); err != nil {
				logger.Warn("snapshot stream cut", "err", err)
				return
			}
		}
		_ = enc.Encode(wire.SnapshotTrailer{End: true, Count: len(rows)})
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

func handleInstall(logger *slog.Logger, svc *Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		joinSeq, err := queryUint(r, "join")
		if err != nil {
			writeError(w, err)
			return
		}
		n, err := install(svc, joinSeq, r.Body)
		if err != nil {
			writeError(w, err)
			return
		}
		logger.Info("snapshot installed", "join_seq", joinSeq, "rows", n)
		httpserver.WriteJSON(w, http.StatusOK, svc.Ack())
	}
}

// install merges a snapshot stream in chunks and finishes the sync once the
// trailer proves the stream complete. A stream cut short leaves the session
// open; merging is idempotent, so the coordinator may send it again.
func install(svc *Service, joinSeq uint64, body io.Reader) (int, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(body, 64<<10))
	var head snapshotLine
	if err := dec.Decode(&head); err != nil {
		return 0, badRequest(fmt.Errorf("snapshot header: %w", err))
	}
	if head.Upto > joinSeq {
		return 0, badRequest(fmt.Errorf("snapshot is up to %d, past the join point %d", head.Upto, joinSeq))
	}
	merge := func(rows []wire.SnapshotEntry) error {
		return svc.with(func(l *ledger.Ledger) error { return l.Merge(joinSeq, rows) })
	}
	rows := make([]wire.SnapshotEntry, 0, installChunk)
	n := 0
	for {
		var line snapshotLine
		if err := dec.Decode(&line); err != nil {
			return n, badRequest(fmt.Errorf("snapshot cut after %d rows: %w", n, err))
		}
		if line.End {
			if line.Count != n+len(rows) {
				return n, badRequest(fmt.Errorf("snapshot trailer says %d rows, got %d", line.Count, n+len(rows)))
			}
			if err := merge(rows); err != nil {
				return n, err
			}
			n += len(rows)
			return n, svc.with(func(l *ledger.Ledger) error { return l.FinishSync(joinSeq) })
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
