package coordinator

import (
	"context"
	"errors"
	"fmt"
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
			if s.cluster.restarted(j.id, j.incarnation) {
				s.resetHistory(ctx)
			}
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
	err := s.syncOnce(ctx, id, incarnation, gen)
	if err == nil {
		logger.Info("counter live after sync")
		return
	}
	if s.registry.FailSync(id, gen) {
		logger.Warn("sync failed; counter marked dead", "err", err)
	}
}

func (s *Service) syncOnce(ctx context.Context, id, incarnation string, gen uint64) error {
	var join wire.JoinResponse
	var at twopc.Position
	syncID := uuid.NewString() // names the counter's sync session
	err := s.committer.Do(ctx, func(ctx context.Context, pos *twopc.Position) error {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CounterTimeout)
		defer cancel()
		resp, err := s.counters.Join(cctx, id, wire.JoinRequest{
			Epoch: pos.Epoch, ClusterID: pos.ClusterID, SyncID: syncID,
			Last: pos.Last, Committed: pos.Committed, Stable: pos.Stable,
		})
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if resp.Incarnation != incarnation {
			return fmt.Errorf("%w: counter restarted as %s", errSuperseded, resp.Incarnation)
		}
		join, at = resp, *pos
		return s.registry.Joined(id, gen, pos.Last.Round.Seq, resp.Complete)
	})
	if err != nil {
		return err
	}
	if !join.Complete {
		if err := s.transfer(ctx, id, gen, syncID, join.Since, at); err != nil {
			return err
		}
		if err := s.registry.Installed(id, gen); err != nil {
			return err
		}
	}
	return s.promote(ctx, id, gen)
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
// committed seq at its join, from a live counter into it. A source that
// fails is replaced by another; with no live source it waits.
func (s *Service) transfer(ctx context.Context, id string, gen uint64, syncID string, since uint64, at twopc.Position) error {
	upto, joinSeq := at.Committed.Seq, at.Last.Round.Seq
	return s.retry(ctx, id, gen, func() (bool, error) {
		if s.committer.Position().ClusterID != at.ClusterID {
			return false, fmt.Errorf("%w: the cluster's history was reset", errSuperseded)
		}
		var sources []string
		for _, m := range s.registry.Live() {
			if m.ID != id {
				sources = append(sources, m.ID)
			}
		}
		if len(sources) == 0 {
			return false, nil
		}
		src := sources[rand.IntN(len(sources))]
		body, err := s.counters.Snapshot(ctx, src, since, upto)
		if err != nil {
			s.logger.Warn("snapshot source failed", "node", src, "err", err)
			return false, nil
		}
		defer body.Close()
		err = s.counters.Install(ctx, id, syncID, joinSeq, body)
		switch {
		case err == nil:
			s.logger.Info("snapshot transferred", "node", id, "source", src, "since", since, "upto", upto)
			return true, nil
		case remote.HasCode(err, wire.CodeSyncMismatch), remote.HasCode(err, wire.CodeStaleEpoch):
			return false, fmt.Errorf("install: %w", err)
		default:
			s.logger.Warn("snapshot transfer failed; retrying", "node", id, "source", src, "err", err)
			return false, nil
		}
	})
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
			return s.cluster.addHolder(pos.ClusterID, pos.Epoch, twopc.Holder{ID: id, Incarnation: m.Incarnation, Live: true})
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

// resetHistory starts a new, empty history once every counter that held
// the data has restarted: with no copy left anywhere, waiting would block
// the service forever. Counters of the old history are wiped when they join.
func (s *Service) resetHistory(ctx context.Context) {
	err := s.committer.Do(ctx, func(_ context.Context, pos *twopc.Position) error {
		if pos.Committed.IsZero() || !s.cluster.noHolder() {
			return nil
		}
		old := pos.ClusterID
		pos.ClusterID, pos.Committed = uuid.NewString(), wire.RoundID{}
		if err := s.cluster.setHolders(pos.ClusterID, pos.Epoch, nil); err != nil {
			return err
		}
		s.logger.Error("every counter that held the data has restarted: the data is lost, starting a new history",
			"old_cluster_id", old, "cluster_id", pos.ClusterID)
		return nil
	})
	if err != nil {
		s.logger.Warn("history reset not done", "err", err)
	}
}
