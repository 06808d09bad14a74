package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// errSuperseded ends a sync whose counter has since died, restarted or been removed.
var errSuperseded = errors.New("sync superseded")

// syncLoop starts one sync per queued counter until ctx ends, then waits
// for the syncs under way.
func (s *Service) syncLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.syncs:
			gen, ok := s.registry.StartSync(j.id, j.incarnation)
			if !ok {
				continue
			}
			sctx := s.startSync(ctx, j.id, gen)
			wg.Go(func() {
				defer s.endSync(j.id, gen)
				s.sync(sctx, j.id, j.incarnation, gen)
			})
		}
	}
}

// startSync returns the context of sync gen of counter id, and cancels the
// context of the sync it supersedes: its transfers stop at once instead
// of streaming into a session that no longer exists.
func (s *Service) startSync(ctx context.Context, id string, gen uint64) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.syncing[id]; ok {
		old.cancel()
	}
	s.syncing[id] = syncRun{gen: gen, cancel: cancel}
	return ctx
}

// endSync releases the context of sync gen of counter id.
func (s *Service) endSync(id string, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if run, ok := s.syncing[id]; ok && run.gen == gen {
		run.cancel()
		delete(s.syncing, id)
	}
}

// syncRun is a sync under way.
type syncRun struct {
	gen    uint64
	cancel context.CancelFunc
}

// sync brings one counter up to date and makes it live:
//
//  1. join: between two rounds, the counter enters the write set at the
//     coordinator's last round; from then on it receives every round.
//  2. snapshot: unless it already holds that history, the rows it lacks
//     (since < seq <= the last committed seq) stream from a live counter
//     through the coordinator into it.
//  3. promote: it becomes live after it commits a round (an empty one if
//     the cluster is idle), so every live counter's view names it.
func (s *Service) sync(ctx context.Context, id, incarnation string, gen uint64) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
	defer cancel()
	logger := s.logger.With("node", id)
	logger.Info("syncing counter", "incarnation", incarnation)
	start := s.now()
	rows, err := s.syncOnce(ctx, id, incarnation, gen)
	s.metrics.synced(s.now().Sub(start), rows, err)
	if err == nil {
		logger.Info("counter live after sync")
		return
	}
	if s.registry.FailSync(id, gen) {
		logger.Warn("sync failed; counter marked dead", "err", err)
	}
}

// syncOnce joins, transfers and promotes the counter, and returns the rows
// it sent (none when the sync failed before its transfer finished).
func (s *Service) syncOnce(ctx context.Context, id, incarnation string, gen uint64) (rows int, err error) {
	join, at, syncID, err := s.join(ctx, id, incarnation, gen)
	if err != nil {
		return 0, err
	}
	if !join.Complete {
		if rows, err = s.transfer(ctx, id, gen, syncID, join.Since, at); err != nil {
			return 0, err
		}
		if err := s.registry.Installed(id, gen); err != nil {
			return rows, err
		}
	}
	s.registry.SyncDone(id, gen, rows, join.Since)
	return rows, s.promote(ctx, id, gen)
}

// optimisticJoins is how often a join is tried outside the committer loop
// before it is sent between two rounds.
const optimisticJoins = 3

// join puts the counter into the write set at the coordinator's position
// and returns its answer, that position and the id of the sync session the
// join opened (each attempt opens its own). The join is first sent outside
// the committer loop, at the position last published, and the counter
// enters the write set only if no round ran meanwhile: a slow or
// unreachable joiner delays no write. Under a steady load a round runs in
// between every time; after optimisticJoins tries the join is sent between
// two rounds, with a deadline of at most 500 ms.
func (s *Service) join(ctx context.Context, id, incarnation string, gen uint64) (wire.JoinResponse, twopc.Position, string, error) {
	var syncID string
	send := func(ctx context.Context, pos twopc.Position, timeout time.Duration) (wire.JoinResponse, error) {
		syncID = uuid.NewString()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		resp, err := s.counters.Join(cctx, id, wire.JoinRequest{
			Epoch: pos.Epoch, ClusterID: pos.ClusterID, SyncID: syncID,
			Last: pos.Last, Committed: pos.Committed, Stable: pos.Stable, Base: pos.Base,
		})
		if err != nil {
			return resp, fmt.Errorf("join: %w", err)
		}
		if resp.Incarnation != incarnation {
			return resp, fmt.Errorf("%w: counter restarted as %s", errSuperseded, resp.Incarnation)
		}
		return resp, nil
	}
	for range optimisticJoins {
		at := s.committer.Position()
		if at.ClusterID == "" {
			break // the loop has not started: join between its first rounds
		}
		resp, err := send(ctx, at, s.cfg.CounterTimeout)
		if remote.HasCode(err, wire.CodeVotedNo) {
			continue // it is already in a later round: the position moved
		}
		if err != nil {
			return resp, at, syncID, err
		}
		joined := false
		err = s.committer.Do(ctx, func(_ context.Context, pos *twopc.Position) error {
			if pos.Epoch != at.Epoch || pos.ClusterID != at.ClusterID || pos.Last != at.Last || pos.Committed != at.Committed {
				return nil // a round ran meanwhile: the counter missed it
			}
			joined = true
			return s.registry.Joined(id, gen, pos.Last.Round.Seq, resp.Complete)
		})
		if err != nil || joined {
			return resp, at, syncID, err
		}
	}
	var resp wire.JoinResponse
	var at twopc.Position
	err := s.committer.Do(ctx, func(ctx context.Context, pos *twopc.Position) error {
		var err error
		if resp, err = send(ctx, *pos, min(s.cfg.CounterTimeout, 500*time.Millisecond)); err != nil {
			return err
		}
		at = *pos
		return s.registry.Joined(id, gen, pos.Last.Round.Seq, resp.Complete)
	})
	return resp, at, syncID, err
}

// retry calls fn with a growing pause until it returns done or an error,
// the sync is superseded, or ctx ends.
func (s *Service) retry(ctx context.Context, id string, gen uint64, fn func() (done bool, err error)) error {
	backoff := 20 * time.Millisecond
	for {
		done, err := fn()
		if done || err != nil {
			return err
		}
		if !s.registry.InSync(id, gen) {
			return errSuperseded
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("sync of %s: %w", id, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, s.cfg.HealthInterval, time.Second)
	}
}

// transfer streams the rows the counter lacks, since < seq <= the last
// committed seq at its join, into it, and returns how many it merged: from
// the committer's recent rounds when they hold them all, else from a live
// counter. A source that fails, or whose stream stalls for stallTimeout, is
// replaced by another (one that has not failed this sync, while there is
// one); with no live source it waits.
func (s *Service) transfer(ctx context.Context, id string, gen uint64, syncID string, since uint64, at twopc.Position) (int, error) {
	upto, joinSeq := at.Committed.Seq, at.Last.Round.Seq
	failed := map[string]bool{}
	rows := 0
	err := s.retry(ctx, id, gen, func() (bool, error) {
		if s.committer.Position().ClusterID != at.ClusterID {
			return false, fmt.Errorf("%w: the cluster's history was reset", errSuperseded)
		}
		switch n, done, err := s.replay(ctx, id, syncID, since, at); {
		case err != nil:
			return false, err
		case done:
			rows = n
			return true, nil
		}
		var sources, fresh []string
		for _, m := range s.registry.Live() {
			if m.ID != id {
				sources = append(sources, m.ID)
				if !failed[m.ID] {
					fresh = append(fresh, m.ID)
				}
			}
		}
		if len(fresh) > 0 {
			sources = fresh
		}
		if len(sources) == 0 {
			return false, nil
		}
		src := sources[rand.IntN(len(sources))]
		ctx, guard, stop := stallGuard(ctx, s.stallTimeout())
		defer stop()
		body, err := s.counters.Snapshot(ctx, src, since, upto)
		if err != nil {
			failed[src] = true
			s.logger.Warn("snapshot source failed", "node", src, "err", context.Cause(ctx), "call_err", err)
			return false, nil
		}
		defer body.Close()
		n, err := s.counters.Install(ctx, id, syncID, joinSeq, guard(body))
		if err != nil && context.Cause(ctx) == errStalled {
			failed[src] = true
			err = fmt.Errorf("%w: %w", errStalled, err)
		}
		switch {
		case err == nil:
			s.logger.Info("snapshot transferred", "node", id, "source", src, "since", since, "upto", upto, "rows", n)
			rows = n
			return true, nil
		case remote.HasCode(err, wire.CodeSyncMismatch), remote.HasCode(err, wire.CodeStaleEpoch):
			return false, fmt.Errorf("install: %w", err)
		default:
			s.logger.Warn("snapshot transfer failed; retrying", "node", id, "source", src, "err", err)
			return false, nil
		}
	})
	return rows, err
}

// replay installs the rows the counter lacks from the committer's recent
// rounds, when it holds every one of them: no counter is needed as a
// source. It reports false, to try the counters, when it cannot, and how
// many rows the counter merged when it could.
func (s *Service) replay(ctx context.Context, id, syncID string, since uint64, at twopc.Position) (int, bool, error) {
	rows, ok, err := s.committer.Replay(at.ClusterID, since, at.Committed)
	if err != nil || !ok {
		if err != nil {
			s.logger.Warn("replay of recent rounds failed", "node", id, "err", err)
		}
		return 0, false, nil
	}
	var buf bytes.Buffer
	sw, _ := wire.NewSnapshotWriter(&buf, since, at.Committed.Seq) // a bytes.Buffer does not fail
	for _, r := range rows {
		_ = sw.Row(r)
	}
	_ = sw.End()
	ctx, cancel := context.WithTimeout(ctx, s.stallTimeout())
	defer cancel()
	n, err := s.counters.Install(ctx, id, syncID, at.Last.Round.Seq, &buf)
	switch {
	case err == nil:
		s.logger.Info("caught up from recent rounds", "node", id, "since", since, "upto", at.Committed.Seq, "rows", n)
		return n, true, nil
	case remote.HasCode(err, wire.CodeSyncMismatch), remote.HasCode(err, wire.CodeStaleEpoch):
		return 0, false, fmt.Errorf("install: %w", err)
	default:
		s.logger.Warn("replay of recent rounds not installed; trying the counters", "node", id, "err", err)
		return 0, false, nil
	}
}

// promote makes the counter live. With no live counter at all, one that
// holds every committed round becomes live at once, and is recorded as a
// holder of the data; otherwise it must commit a round first.
func (s *Service) promote(ctx context.Context, id string, gen uint64) error {
	return s.retry(ctx, id, gen, func() (bool, error) {
		var alone bool
		err := s.committer.Do(ctx, func(_ context.Context, pos *twopc.Position) error {
			if !s.registry.PromoteAlone(id, gen, pos.Committed.Seq) {
				return nil
			}
			alone = true
			m, _ := s.registry.Get(id)
			if err := s.cluster.addHolder(pos.ClusterID, pos.Epoch, twopc.Holder{ID: id, Incarnation: m.Incarnation, Live: true}); err != nil {
				// Not recorded: it must not serve as the only copy.
				s.registry.Fail(id)
				return err
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		if alone {
			return true, nil
		}
		if err := s.committer.Barrier(ctx); err != nil {
			s.logger.Debug("promotion round failed", "node", id, "err", err)
		}
		return s.registry.IsLive(id, gen), nil
	})
}

// errStalled ends a snapshot transfer that made no progress for a while: a
// paused source (or target) is swapped instead of holding the sync until
// SYNC_TIMEOUT.
var errStalled = errors.New("snapshot transfer stalled")

// stallTimeout is how long a snapshot transfer may go without a byte.
func (s *Service) stallTimeout() time.Duration { return 5 * s.cfg.CounterTimeout }

// stallGuard returns a context that ends with errStalled once idle passes
// without progress, a wrapper that counts every byte read through it as
// progress, and the function that releases it. The wait for the first
// byte counts too.
func stallGuard(ctx context.Context, idle time.Duration) (context.Context, func(io.Reader) io.Reader, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(idle, func() { cancel(errStalled) })
	guard := func(r io.Reader) io.Reader { return &progressReader{r: r, timer: timer, idle: idle} }
	return ctx, guard, func() {
		timer.Stop()
		cancel(nil)
	}
}

// progressReader pushes its timer back on every byte read.
type progressReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.timer.Reset(p.idle)
	}
	return n, err
}
