// Package coordinator is the coordinator service: the public API, the
// committer that runs two-phase commit rounds, the membership of the
// counters with its health checks, bringing counters up to date, and the
// recovery of the commit order after a restart.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/distributed-counter/distributed-counter/internal/membership"
	"github.com/distributed-counter/distributed-counter/internal/remote"
	"github.com/distributed-counter/distributed-counter/internal/twopc"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Outcomes the handlers map to answers.
var (
	// ErrRecovering: the coordinator is rebuilding the commit order after a start.
	ErrRecovering = errors.New("coordinator is recovering; retry shortly")
	// ErrNoCounter: no live counter could answer a read.
	ErrNoCounter = errors.New("no live counter available")
	// ErrBadRegistration: a registration that names no usable counter address.
	ErrBadRegistration = errors.New("bad registration")
	// ErrTooManyCounters: a registration of a new counter past MAX_COUNTERS.
	ErrTooManyCounters = errors.New("too many counters registered")
	// ErrReadTimeout: a read did not finish within its deadline.
	ErrReadTimeout = errors.New("read timed out")
	// ErrCounterRejected: a counter rejected a request as malformed. It
	// is a bug or mismatched versions, not the counter's failure.
	ErrCounterRejected = errors.New("a counter rejected the request")
)

// Service is the coordinator's logic behind its HTTP handlers.
type Service struct {
	cfg       Config
	logger    *slog.Logger
	now       func() time.Time
	registry  *membership.Registry
	counters  *remote.Counters
	committer *twopc.Committer
	cluster   *cluster
	metrics   *metrics

	syncs chan syncJob

	mu         sync.Mutex
	syncing    map[string]syncRun // the sync under way of each counter
	recovering bool
	// fence is, while recovering, the epoch this coordinator will run at
	// at least: above every epoch it knows of. Counters adopt it when they
	// register, and only reports made under it count.
	fence uint64
	// closing is set once recovery has chosen its position: the fence is
	// final (it is the new epoch) and is raised no more.
	closing  bool
	reports  map[string]wire.Status // collected while recovering
	reported chan struct{}          // signals a new report while recovering
}

type syncJob struct{ id, incarnation string }

// NewService wires the coordinator's parts; Run starts them.
func NewService(cfg Config, counters *remote.Counters, state *stateFile, now func() time.Time, logger *slog.Logger) *Service {
	s := &Service{
		cfg:        cfg,
		logger:     logger,
		now:        now,
		registry:   membership.New(cfg.RecoveryTries, cfg.MaxCounters, now),
		counters:   counters,
		syncs:      make(chan syncJob, 256),
		syncing:    make(map[string]syncRun),
		recovering: true,
		reports:    make(map[string]wire.Status),
		reported:   make(chan struct{}, 1),
	}
	s.cluster = &cluster{registry: s.registry, state: state, logger: logger}
	s.metrics = newMetrics(s) // its gauges read the committer only when scraped
	s.committer = twopc.New(twopc.Config{
		MinLive:        cfg.MinLiveCounters,
		MaxBatchItems:  cfg.MaxBatchItems,
		MaxRoundBytes:  int(cfg.MaxRoundBytes),
		MaxView:        cfg.MaxCounters,
		QueueSize:      cfg.MaxQueuedRequests,
		MaxQueueBytes:  cfg.MaxInflightBytes,
		CallTimeout:    cfg.CounterTimeout,
		CommitAttempts: 2,
		NewTxID:        uuid.NewString,
		Observer:       s.metrics,
	}, s.cluster, counters, logger)
	return s
}

// AddItems adds a batch of items to the commit order and returns once they
// are committed on every live counter.
func (s *Service) AddItems(ctx context.Context, batch wire.Batch) error {
	if s.isRecovering() {
		return ErrRecovering
	}
	if err := s.committer.Submit(ctx, batch); err != nil {
		return err
	}
	s.metrics.wrote(batch.Items)
	return nil
}

// MaxBatchBytes is the largest encoded batch a round can carry.
func (s *Service) MaxBatchBytes() int { return s.committer.MaxBatchBytes() }

// CachedCount is Count when the committer's count cache holds the tenant
// at or above the published stable seq: the same answer, with no call.
// ok is false while recovering, and on a miss.
func (s *Service) CachedCount(tenantID string) (int64, bool) {
	if s.isRecovering() {
		return 0, false
	}
	n, ok := s.committer.CachedCount(tenantID, s.committer.Position().Stable)
	if ok {
		s.metrics.read(true)
	}
	return n, ok
}

// Count reads a tenant's count, fenced at the stable watermark taken when
// the read begins: the answer reflects every write acknowledged before.
// The committer's count cache answers when it holds the tenant (it is
// never behind the published stable seq); otherwise a random live counter
// does, and its answer fills the cache. A counter that
// cannot be reached or refuses (it is behind, not ready, or has seen a
// later epoch) is marked dead and another one is tried. A counter that
// rejects the request itself stays live: that is not its failure.
func (s *Service) Count(ctx context.Context, tenantID string) (int64, error) {
	if n, ok := s.CachedCount(tenantID); ok {
		return n, nil
	}
	if s.isRecovering() {
		return 0, ErrRecovering
	}
	pos := s.committer.Position()
	live := s.registry.Live()
	rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	var errs []error
	for _, m := range live {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CounterTimeout)
		n, at, err := s.counters.Count(cctx, m.ID, tenantID, pos.Epoch, pos.Stable)
		cancel()
		if err == nil {
			s.committer.FillCount(tenantID, n, at)
			s.metrics.read(false)
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %w", ErrReadTimeout, ctx.Err())
		}
		if remote.IsRejected(err) {
			return 0, fmt.Errorf("%w: %w", ErrCounterRejected, err)
		}
		if s.registry.Fail(m.ID) {
			s.logger.Warn("counter marked dead", "node", m.ID, "err", err)
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return 0, ErrNoCounter
	}
	return 0, fmt.Errorf("%w: %w", ErrNoCounter, errors.Join(errs...))
}

// Register handles a counter's registration, checked by wire.DecodeRegister.
// While recovering it is a report towards choosing where the commit order
// resumes; afterwards a counter that is new, restarted or dead is brought
// up to date. At most MaxCounters counters are known at once.
func (s *Service) Register(st wire.Status) (wire.RegisterResponse, error) {
	s.mu.Lock()
	if s.recovering {
		if _, known := s.reports[st.ID]; !known && len(s.reports) >= s.cfg.MaxCounters {
			s.mu.Unlock()
			return wire.RegisterResponse{}, fmt.Errorf("%w: at most %d", ErrTooManyCounters, s.cfg.MaxCounters)
		}
		if !s.closing && (st.Epoch >= s.fence || st.Fence > s.fence) {
			// A coordinator this one did not know of ran at that epoch,
			// or fenced the counter higher: go above it, and ask every
			// counter to report again.
			s.fence = max(st.Epoch+1, st.Fence)
			maps.DeleteFunc(s.reports, func(_ string, r wire.Status) bool { return r.Fence < s.fence })
		}
		// A report counts once the counter has adopted the fence: from
		// then on no older coordinator can change what it reports.
		if st.Fence >= s.fence {
			s.reports[st.ID] = st
		}
		s.counters.SetAddress(st.ID, st.URL)
		fence := s.fence
		s.mu.Unlock()
		select {
		case s.reported <- struct{}{}:
		default:
		}
		return wire.RegisterResponse{Epoch: fence, State: "recovering"}, nil
	}
	s.mu.Unlock()
	if _, known := s.registry.Get(st.ID); !known && s.registry.Full() {
		return wire.RegisterResponse{}, fmt.Errorf("%w: at most %d", ErrTooManyCounters, s.cfg.MaxCounters)
	}
	if s.counters.SetAddress(st.ID, st.URL) {
		s.logger.Info("counter address", "node", st.ID, "url", st.URL)
	}
	if s.registry.NeedsSync(st.ID, st.Incarnation) {
		s.resync(st.ID, st.Incarnation)
	}
	m, _ := s.registry.Get(st.ID)
	return wire.RegisterResponse{Epoch: s.committer.Position().Epoch, State: string(m.State)}, nil
}

// Counters describes the cluster for GET /counters. The public view names
// each counter by wire.CounterName; internal adds its URL and last error.
func (s *Service) Counters(internal bool) wire.CountersResponse {
	pos := s.committer.Position()
	resp := wire.CountersResponse{Epoch: pos.Epoch, Last: pos.Last.Round, Stable: pos.Stable, Recovering: s.isRecovering(),
		Counters: []wire.CounterInfo{}}
	for _, m := range s.registry.List() {
		resp.Counters = append(resp.Counters, s.counterInfo(m, internal))
	}
	return resp
}

// counterInfo is one member as GET /counters shows it: internal adds its
// id, address and last error.
func (s *Service) counterInfo(m membership.Member, internal bool) wire.CounterInfo {
	info := wire.CounterInfo{
		Name:        wire.CounterName(m.ID, s.cfg.ClusterToken),
		Incarnation: m.Incarnation,
		State:       string(m.State),
		Applied:     m.Applied,
		Failures:    m.Failures,
		Healthy:     m.LastError == "",
	}
	if internal {
		info.ID, info.LastError = m.ID, m.LastError
		info.URL, _ = s.counters.Address(m.ID)
	}
	if m.Synced {
		info.LastSync = &wire.SyncInfo{Rows: m.SyncRows, Since: m.SyncSince}
	}
	if !m.LastCheck.IsZero() {
		info.LastCheck = m.LastCheck.UTC().Format(time.RFC3339Nano)
	}
	return info
}

// Status is what the status page shows: the public view of the counters
// (as GET /counters), with each one's lag and error kind, the rates of the
// last minutes and the latest membership events.
func (s *Service) Status() wire.StatusResponse {
	pos := s.committer.Position()
	resp := wire.StatusResponse{
		Now: s.now().UTC().Format(time.RFC3339Nano), Phase: "serving",
		Epoch: pos.Epoch, Last: pos.Last.Round.Seq, Stable: pos.Stable,
		Counters: []wire.StatusCounter{},
		Interval: SampleInterval.Seconds(),
		History:  []wire.StatusSample{},
		Events:   []wire.StatusEvent{},
	}
	if s.isRecovering() {
		resp.Phase = "recovering"
	}
	for _, m := range s.registry.List() {
		sc := wire.StatusCounter{CounterInfo: s.counterInfo(m, false), Error: m.ErrorKind}
		if m.Applied < pos.Stable {
			sc.Lag = pos.Stable - m.Applied
		}
		resp.Counters = append(resp.Counters, sc)
	}
	for _, h := range s.metrics.samples() {
		resp.History = append(resp.History, wire.StatusSample{At: h.At.UTC().Format(time.RFC3339), Writes: h.Writes,
			Items: h.Items, Reads: h.Reads, RoundItems: h.RoundItems})
	}
	for _, e := range s.registry.Events() {
		resp.Events = append(resp.Events, wire.StatusEvent{At: e.At.UTC().Format(time.RFC3339Nano),
			Counter: wire.CounterName(e.ID, s.cfg.ClusterToken), Kind: e.Kind, Detail: e.Detail})
	}
	return resp
}

func (s *Service) isRecovering() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovering
}

// resync queues a counter to be brought up to date. When the queue is full
// the request is dropped: the next health check or registration asks again.
func (s *Service) resync(id, incarnation string) {
	select {
	case s.syncs <- syncJob{id, incarnation}:
	default:
		s.logger.Warn("sync queue full; counter will be retried", "node", id)
	}
}

// cluster adapts the registry to what the committer needs, and tracks
// which counters may hold the last committed round.
type cluster struct {
	registry *membership.Registry
	state    *stateFile
	logger   *slog.Logger

	mu sync.Mutex
	// holders are the counters that hold every acknowledged round (see
	// twopc.Holder), as last recorded in the state file. Once every one of
	// them has restarted (a counter keeps its data in memory), no copy of
	// the data is left.
	holders []twopc.Holder
}

func (c *cluster) WriteSet() []twopc.Peer {
	members := c.registry.WriteSet()
	peers := make([]twopc.Peer, len(members))
	for i, m := range members {
		peers[i] = twopc.Peer{ID: m.ID, Live: m.State == membership.Live}
	}
	return peers
}

func (c *cluster) Failed(id string, err error) {
	if c.registry.Fail(id) {
		c.logger.Warn("counter marked dead", "node", id, "err", err)
	}
}

// Committing records the voters of a round decided commit as the holders,
// durably when they changed, before any of them commits it.
func (c *cluster) Committing(round wire.RoundID, clusterID string, voters []twopc.Peer) error {
	holders := make([]twopc.Holder, 0, len(voters))
	for _, p := range voters {
		if m, ok := c.registry.Get(p.ID); ok {
			holders = append(holders, twopc.Holder{ID: p.ID, Incarnation: m.Incarnation, Live: p.Live})
		}
	}
	return c.setHolders(clusterID, round.Epoch, holders)
}

// RoundDone promotes the syncing counters that committed the round and
// records the counters that acknowledged it as the holders: when a voter
// failed to commit, it must not count as a holder once clients are told.
func (c *cluster) RoundDone(round wire.RoundID, clusterID string, acked []twopc.Peer) error {
	ids := make([]string, len(acked))
	for i, p := range acked {
		ids[i] = p.ID
	}
	for _, id := range c.registry.RoundDone(round.Seq, ids) {
		c.logger.Info("counter live", "node", id, "seq", round.Seq)
	}
	if !slices.ContainsFunc(acked, func(p twopc.Peer) bool { return p.Live }) {
		// No live counter acknowledged: no client is told the round
		// succeeded, and any voter may have applied it. The voters stay
		// the holders.
		return nil
	}
	holders := make([]twopc.Holder, 0, len(acked))
	for _, p := range acked {
		if m, ok := c.registry.Get(p.ID); ok {
			holders = append(holders, twopc.Holder{ID: p.ID, Incarnation: m.Incarnation, Live: p.Live || m.State == membership.Live})
		}
	}
	return c.setHolders(clusterID, round.Epoch, holders)
}

// addHolder records one more holder of every acknowledged round: a
// counter promoted alone holds them all, so the restart of an old holder
// no longer leaves no copy.
func (c *cluster) addHolder(clusterID string, epoch uint64, h twopc.Holder) error {
	c.mu.Lock()
	holders := slices.DeleteFunc(slices.Clone(c.holders), func(o twopc.Holder) bool { return o.ID == h.ID })
	c.mu.Unlock()
	return c.setHolders(clusterID, epoch, append(holders, h))
}

// setHolders records the holders durably, then in memory: when the write
// fails, the holders stay what the file says, so a later restart of a
// counter that was never recorded cannot be taken for the loss of every copy.
func (c *cluster) setHolders(clusterID string, epoch uint64, holders []twopc.Holder) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.state.save(persisted{ClusterID: clusterID, Epoch: epoch, Holders: holders}); err != nil {
		return err
	}
	c.holders = holders
	return nil
}

// awaitRecovery collects counters' reports until RecoveryGrace has passed
// and no counter that may hold newer data is missing, then returns the
// position to resume from and leaves recovery. See twopc.Missing and
// twopc.Resume for why that is safe.
//
// saved is what the previous coordinator recorded, if recorded: it decides
// whom recovery waits for, and the new epoch is above its epoch.
func (s *Service) awaitRecovery(ctx context.Context, saved persisted, recorded bool) (twopc.Position, error) {
	grace := time.NewTimer(s.cfg.RecoveryGrace)
	defer grace.Stop()
	select {
	case <-ctx.Done():
		return twopc.Position{}, ctx.Err()
	case <-grace.C:
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastLog time.Time
	for {
		s.mu.Lock()
		missing := twopc.Missing(s.reports, saved.Holders, recorded)
		if len(missing) == 0 {
			pos, seed := twopc.Resume(s.reports, s.fence, uuid.NewString())
			s.closing = true
			reports := maps.Clone(s.reports) // Register may add more until recovery ends
			s.mu.Unlock()
			var holders []twopc.Holder
			for id, st := range reports {
				if st.ClusterID == pos.ClusterID && twopc.Holds(st, pos.Committed) {
					holders = append(holders, twopc.Holder{ID: id, Incarnation: st.Incarnation, Live: true})
				}
			}
			// Recorded before leaving recovery: a coordinator that cannot
			// record its holders must not run rounds.
			if err := s.cluster.setHolders(pos.ClusterID, pos.Epoch, holders); err != nil {
				return twopc.Position{}, err
			}
			s.mu.Lock()
			all := s.reports // with any report that arrived meanwhile
			s.recovering, s.reports = false, nil
			s.mu.Unlock()
			s.logger.Info("recovered commit order", "epoch", pos.Epoch, "last", pos.Last.Round.String(),
				"seed", seed, "counters", len(reports), "cluster_id", pos.ClusterID)
			if seed == "" && len(saved.Holders) > 0 {
				s.logger.Error("no counter that reported holds the data its holders had: starting a new, empty history",
					"old_cluster_id", saved.ClusterID, "holders", saved.Holders)
			}
			for id, st := range all {
				s.resync(id, st.Incarnation)
			}
			return pos, nil
		}
		s.mu.Unlock()
		if now := s.now(); now.Sub(lastLog) >= 5*time.Second {
			s.logger.Warn("recovery waits for counters that may hold the latest data", "missing", missing)
			lastLog = now
		}
		select {
		case <-ctx.Done():
			return twopc.Position{}, ctx.Err()
		case <-s.reported:
		case <-tick.C:
		}
	}
}
