package ledger

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// idFilter answers, in memory, "may this id key be on disk?" for every id
// key the ledger holds, so that the lookup telling a new id from a known
// one, which almost always finds a new id, is not an engine read. A "no"
// is exact once the filter is complete: every id key written since Open
// was added as it was written (before its batch commits), and every one
// on disk at Open by a scan that runs in the background (6-7 s beside
// 11.8 M ids, three counters scanning at once on 2 cores): a restarted
// counter does not wait for it, and until it ends every lookup reads the
// engine. A "maybe" is wrong for about 0.13% of absent keys per full part
// of the chain (TestIDFilter_FewFalsePositives), and is settled by
// reading the engine. Keys deleted from the engine stay in the filter: that costs
// a read, never a wrong answer.
//
// It is a chain of split-block bloom filters (the Parquet and Impala
// design: a key sets one bit in each of the eight 32-bit words of one
// 32-byte block, so a test touches one cache line), each twice the
// capacity of the one before: a filter sized for the ids at Open goes on
// working as the ledger grows, without a rebuild. Its memory is 2 bytes
// per id of capacity; Open sizes the first filter for twice the ids held
// (at least 1 M), so a counter opened with 10 M ids uses 40 MB for it. It
// never takes more than maxFilterBytes: past that it is dropped.
//
// The engine's own bloom filters answer the same question for its
// sstables, but only after a search of each memtable's skiplist: under
// `make bench`'s writes, those lookups were 31% of a counter's CPU, and
// go test -bench Ledger_Load -benchtime 2000x (2 M random ids) went from
// 14.5 to 6.4 µs of CPU per id with this filter.
type idFilter struct {
	seed     maphash.Seed
	parts    []*bloomPart // changed only under the ledger's lock
	maxBytes int          // the most the parts may take; see maxFilterBytes
	// complete is set once every id key on disk at Open has been added.
	complete atomic.Bool
	// dropped is set when the ids outgrew maxBytes: from then on the
	// filter is not kept, and every lookup reads the engine again.
	dropped atomic.Bool
}

// maxFilterBytes bounds a filter's memory: 256 MB holds about 134 M ids.
// A counter that holds more reads the engine for every lookup, as it did
// before the filter, rather than grow its memory with its data.
const maxFilterBytes = 256 << 20

// minFilterCapacity is the capacity of the first filter of a small ledger.
const minFilterCapacity = 1 << 20

// bitsPerKey is the size of a filter per key of its capacity: 16 bits in
// blocks of 256 give a false-positive rate near 0.13% when full.
const bitsPerKey = 16

// bloomPart is one filter of the chain. Its bits are set and read
// atomically: while the scan of Open fills the first part, the ledger
// adds the keys it writes to it too.
type bloomPart struct {
	blocks   [][8]uint32
	capacity int
	n        int // keys added by the ledger, and those the scan was expected to add
}

// salts are the odd multipliers of the split-block bloom filter
// (from the Parquet specification): one per word of a block.
var salts = [8]uint32{
	0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d,
	0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
}

func newBloomPart(capacity int) *bloomPart {
	blocks := max(1, capacity*bitsPerKey/256)
	return &bloomPart{blocks: make([][8]uint32, blocks), capacity: capacity}
}

// block picks the key's block from the hash's high 32 bits, scaled to
// the number of blocks (a multiply, not a modulo).
func (p *bloomPart) block(h uint64) *[8]uint32 {
	return &p.blocks[(h>>32)*uint64(len(p.blocks))>>32]
}

func (p *bloomPart) set(h uint64) {
	b, x := p.block(h), uint32(h)
	for i, s := range salts {
		atomic.OrUint32(&b[i], 1<<((x*s)>>27))
	}
}

func (p *bloomPart) mayContain(h uint64) bool {
	b, x := p.block(h), uint32(h)
	for i, s := range salts {
		if atomic.LoadUint32(&b[i])&(1<<((x*s)>>27)) == 0 {
			return false
		}
	}
	return true
}

// newIDFilter returns an empty filter sized for about expected keys;
// complete says that the engine holds no id key, so it is complete as it
// is. Otherwise a scan must fill it (scanIDs).
func newIDFilter(expected int, complete bool) *idFilter {
	return newCappedIDFilter(expected, complete, maxFilterBytes)
}

// newCappedIDFilter is newIDFilter with parts of at most maxBytes in all:
// a filter that cannot hold twice the ids expected, or at least them, is
// dropped from the start.
func newCappedIDFilter(expected int, complete bool, maxBytes int) *idFilter {
	f := &idFilter{seed: maphash.MakeSeed(), maxBytes: maxBytes}
	f.complete.Store(complete)
	capacity := max(minFilterCapacity, 2*expected)
	if partBytes(capacity) > maxBytes {
		capacity = maxBytes * 8 / bitsPerKey
	}
	if capacity < expected || partBytes(capacity) > maxBytes {
		f.dropped.Store(true)
		return f
	}
	p := newBloomPart(capacity)
	p.n = expected
	f.parts = []*bloomPart{p}
	return f
}

// partBytes is the memory of a part of the given capacity.
func partBytes(capacity int) int { return 32 * max(1, capacity*bitsPerKey/256) }

// usable reports whether the filter's "no" may be trusted: it holds every
// id on disk, and was not dropped.
func (f *idFilter) usable() bool { return f.complete.Load() && !f.dropped.Load() }

func (f *idFilter) hash(key []byte) uint64 { return maphash.Bytes(f.seed, key) }

// add records that key may be on disk from now on. Under the ledger's
// lock. It reports true when the filter was dropped by this key: the next
// part would take it past maxBytes.
func (f *idFilter) add(key []byte) (dropped bool) {
	if f.dropped.Load() {
		return false
	}
	last := f.parts[len(f.parts)-1]
	if last.n >= last.capacity {
		if f.bytes()+partBytes(2*last.capacity) > f.maxBytes {
			f.dropped.Store(true)
			f.parts = nil // the scan, if it still runs, holds only the first part
			return true
		}
		last = newBloomPart(2 * last.capacity)
		f.parts = append(f.parts, last)
	}
	last.set(f.hash(key))
	last.n++
	return false
}

// mayContain is false only if key was never added. Under the ledger's
// lock, and meaningful only while the filter is usable.
func (f *idFilter) mayContain(key []byte) bool {
	h := f.hash(key)
	for _, p := range f.parts {
		if p.mayContain(h) {
			return true
		}
	}
	return false
}

// bytes is the filter's memory.
func (f *idFilter) bytes() int {
	n := 0
	for _, p := range f.parts {
		n += 32 * len(p.blocks)
	}
	return n
}

// filterScan fills a filter with the id keys on disk at Open, in the
// background; Close stops it.
type filterScan struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// scanIDs starts adding every id key of db to f (its first part), and
// marks f complete when it has. A scan that fails leaves f incomplete:
// lookups go on reading the engine. A dropped filter is not scanned.
func scanIDs(db *pebble.DB, f *idFilter, logger *slog.Logger) *filterScan {
	ctx, cancel := context.WithCancel(context.Background())
	s := &filterScan{cancel: cancel}
	if f.dropped.Load() {
		logger.Warn("too many ids for the filter of the ids held: every lookup reads the engine", "max_bytes", f.maxBytes)
		return s
	}
	first := f.parts[0]
	s.done.Go(func() {
		start := time.Now()
		n, err := scanInto(ctx, db, f, first)
		if err != nil {
			if ctx.Err() == nil {
				logger.Error("filter of the ids held not built: every lookup reads the engine", "err", err)
			}
			return
		}
		f.complete.Store(true)
		// Only the first part is this goroutine's to read: the ledger may
		// be adding parts meanwhile.
		logger.Info("filter of the ids held built", "ids", n, "bytes", 32*len(first.blocks), "duration", time.Since(start))
	})
	return s
}

func scanInto(ctx context.Context, db *pebble.DB, f *idFilter, p *bloomPart) (n int, err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixID}, UpperBound: []byte{prefixID + 1}})
	if err != nil {
		return 0, err
	}
	for it.First(); it.Valid(); it.Next() {
		p.set(f.hash(it.Key()))
		if n++; n%4096 == 0 && ctx.Err() != nil {
			_ = it.Close()
			return n, ctx.Err()
		}
	}
	return n, it.Close()
}

// stop ends the scan and waits for it.
func (s *filterScan) stop() {
	s.cancel()
	s.done.Wait()
}

// holdsID reports whether the id key k is on disk, reading the engine
// only when the filter cannot say no.
func (l *Ledger) holdsID(k []byte) (bool, error) {
	if !l.mayHoldID(k) {
		return false, nil
	}
	return has(l.db, k)
}

// mayHoldID is false only when the id key k is certainly not on disk.
func (l *Ledger) mayHoldID(k []byte) bool {
	return !l.ids.usable() || l.ids.mayContain(k)
}

// addID records in the filter that the id key k may be on disk from now on.
func (l *Ledger) addID(k []byte) {
	if l.ids.add(k) {
		l.logger.Warn("too many ids for the filter of the ids held: every lookup reads the engine from now on", "max_bytes", l.ids.maxBytes)
	}
}
