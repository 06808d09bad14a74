package twopc

import (
	"fmt"
	"sync"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// replayRounds bounds how many recent committed rounds the committer keeps;
// their bodies together stay within MaxRoundBytes.
const replayRounds = 16

// committedRound is a round decided commit, as its participants received it.
type committedRound struct {
	clusterID string
	round     wire.RoundID
	prev      wire.RoundID // the committed round before it
	body      []byte       // the encoded prepare
}

// replayLog holds the last committed rounds, oldest first: consecutive in
// the commit order (each one's prev is the one before it).
type replayLog struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	rounds   []committedRound
}

// add appends a committed round and drops the oldest beyond the bounds. A
// round that does not follow the newest one (another history) starts over.
func (l *replayLog) add(r committedRound) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.rounds); n > 0 && (l.rounds[n-1].round != r.prev || l.rounds[n-1].clusterID != r.clusterID) {
		l.rounds, l.bytes = nil, 0
	}
	l.rounds = append(l.rounds, r)
	l.bytes += len(r.body)
	for len(l.rounds) > 0 && (len(l.rounds) > replayRounds || l.bytes > l.maxBytes) {
		l.bytes -= len(l.rounds[0].body)
		l.rounds = l.rounds[1:]
	}
}

// Replay returns the rows of every round committed in history clusterID
// with since < seq <= upto.Seq, when the log holds all of them (upto
// among them): a counter that keeps the rows up to since catches up
// from the coordinator's memory, with no counter as a source. It is how a
// counter that lost a round it voted on (its staged copy died with its
// process) gets it back even when every voter did.
func (c *Committer) Replay(clusterID string, since uint64, upto wire.RoundID) ([]wire.SnapshotEntry, bool, error) {
	l := &c.replay
	l.mu.Lock()
	var rounds []committedRound
	covered := false
	for _, r := range l.rounds {
		if r.clusterID != clusterID || r.round.Seq <= since || r.round.Seq > upto.Seq {
			continue
		}
		if len(rounds) == 0 {
			covered = r.prev.Seq <= since // no committed round between since and it
		}
		rounds = append(rounds, r)
	}
	ok := covered && len(rounds) > 0 && rounds[len(rounds)-1].round == upto
	if !ok && upto.Seq <= since {
		ok, rounds = true, nil // nothing to send
	}
	l.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	var rows []wire.SnapshotEntry
	for _, r := range rounds {
		req, err := wire.DecodePrepare(r.body)
		if err != nil {
			return nil, false, fmt.Errorf("replay of round %s: %w", r.round, err)
		}
		for _, it := range req.Items {
			rows = append(rows, wire.SnapshotEntry{Tenant: it.Tenant, ID: it.ID, Seq: r.round.Seq})
		}
	}
	return rows, true, nil
}
