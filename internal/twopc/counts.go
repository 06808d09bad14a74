package twopc

import (
	"maps"
	"sync"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// countCacheRounds is how many applied rounds the cache keeps to bring a
// count read at an older stable seq up to its own.
const countCacheRounds = 256

// roundDelta is what a committed round added: new ids per tenant, as its
// live voters reported them.
type roundDelta struct {
	seq   uint64
	added map[string]int64
	known bool // false: no live voter reported it, or they disagreed
}

// countCache holds tenants' counts as of one stable seq, so a read needs
// no counter. The committer, the single sequencer, keeps it exact: every
// round decided commit leaves its delta (committed), and the deltas up to
// a stable seq are applied before the committer publishes that seq
// (stable), so the cache is never behind the published stable seq. A
// count fills it only at the cache's seq (or brought up to it by the
// rounds it keeps); a round whose delta is unknown empties it.
type countCache struct {
	mu      sync.Mutex
	max     int
	at      uint64           // every entry is the count as of stable seq at
	entries map[string]int64 // tenant -> count as of at
	pending []roundDelta     // rounds decided commit above at, in order
	// recent are the last rounds applied, all the committed rounds above
	// recentFrom: what a fill at an older seq needs to catch up.
	recent     []roundDelta
	recentFrom uint64
}

func newCountCache(max int) *countCache {
	return &countCache{max: max, entries: make(map[string]int64)}
}

// reset starts the cache empty at stable seq at (a committer's start).
func (c *countCache) reset(at uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.recentFrom = at, at
	c.entries, c.pending, c.recent = make(map[string]int64), nil, nil
}

// committed records the delta of round seq, decided commit; known is false
// when no live voter reported one (or they disagreed).
func (c *countCache) committed(seq uint64, added map[string]int64, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, roundDelta{seq: seq, added: added, known: known})
}

// stable applies the rounds up to seq upto and moves the cache there.
func (c *countCache) stable(upto uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for ; n < len(c.pending); n++ {
		d := c.pending[n]
		if d.seq > upto {
			break
		}
		if !d.known {
			// Nothing known about this round: nothing cached can be kept.
			c.entries, c.recent, c.recentFrom = make(map[string]int64), nil, d.seq
			continue
		}
		for tenantID, k := range d.added {
			if v, ok := c.entries[tenantID]; ok {
				c.entries[tenantID] = v + k
			}
		}
		c.recent = append(c.recent, d)
		if len(c.recent) > countCacheRounds {
			c.recentFrom = c.recent[0].seq
			c.recent = c.recent[1:]
		}
	}
	c.pending = c.pending[n:]
	c.at = max(c.at, upto)
}

// get returns the tenant's count as of a stable seq at least fence.
func (c *countCache) get(tenantID string, fence uint64) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.entries[tenantID]
	return n, ok && c.at >= fence
}

// fill adds a count read from a counter as of stable seq at, brought up
// to the cache's seq by the rounds it keeps; it is dropped when they do
// not reach back that far.
func (c *countCache) fill(tenantID string, n int64, at uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at > c.at || at < c.recentFrom {
		return
	}
	for _, d := range c.recent {
		if d.seq > at {
			n += d.added[tenantID]
		}
	}
	if _, ok := c.entries[tenantID]; !ok && len(c.entries) >= c.max {
		for k := range c.entries { // evict one: any will do
			delete(c.entries, k)
			break
		}
	}
	c.entries[tenantID] = n
}

// agree returns the delta of a round from its live voters' votes, and
// whether they all reported the same one.
func agree(votes []wire.Vote) (map[string]int64, bool) {
	if len(votes) == 0 {
		return nil, false
	}
	for _, v := range votes[1:] {
		if !maps.Equal(v.Added, votes[0].Added) {
			return nil, false
		}
	}
	return votes[0].Added, true
}
