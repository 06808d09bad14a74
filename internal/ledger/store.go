package ledger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// The ledger's rows live in Pebble, under four kinds of key:
//
//	m                                   the meta record (JSON): identity and position
//	c <tenant>                          the tenant's count of ids, 8 bytes big-endian
//	i <len(tenant)> <tenant> <id>       an id: the seq of the round that first added it
//	s <seq> <len(tenant)> <tenant> <id> the same id, indexed by seq (empty value)
//
// <len> is a uvarint, <seq> 8 bytes big-endian, so the seq index iterates
// in commit order: a delta snapshot (seq > since) and a truncation are one
// range scan each. Tenants and ids are any UTF-8, NUL included, which the
// length prefix keeps apart.
const (
	prefixMeta  = 'm'
	prefixCount = 'c'
	prefixID    = 'i'
	prefixSeq   = 's'
)

// metaVersion is the layout above; a data directory of another version is refused.
const metaVersion = 1

var metaKey = []byte{prefixMeta}

// meta is the persisted part of the ledger's state, written in the same
// batch as the rows it describes.
type meta struct {
	Version       int          `json:"version"`
	ID            string       `json:"id"`
	ClusterID     string       `json:"cluster_id,omitempty"`
	Mode          wire.Mode    `json:"mode"`
	Epoch         uint64       `json:"epoch"`
	Fence         uint64       `json:"fence"`
	Last          wire.RoundID `json:"last"`
	LastCommitted bool         `json:"last_committed"`
	LastCommit    wire.RoundID `json:"last_commit"`
	Holds         wire.RoundID `json:"holds"`
	Stable        uint64       `json:"stable"`
	Since         uint64       `json:"since"`
	Items         int          `json:"items"`
	Tenants       int          `json:"tenants"`
}

func appendTenantID(k []byte, tenantID, id string) []byte {
	k = binary.AppendUvarint(k, uint64(len(tenantID)))
	k = append(k, tenantID...)
	return append(k, id...)
}

func idKey(tenantID, id string) []byte {
	k := make([]byte, 0, 3+len(tenantID)+len(id))
	k = append(k, prefixID)
	return appendTenantID(k, tenantID, id)
}

func seqKey(seq uint64, tenantID, id string) []byte {
	k := make([]byte, 0, 11+len(tenantID)+len(id))
	k = append(k, prefixSeq)
	k = binary.BigEndian.AppendUint64(k, seq)
	return appendTenantID(k, tenantID, id)
}

// seqBound is the first key of the seq index at seq.
func seqBound(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixSeq}, seq)
}

func countKey(tenantID string) []byte {
	return append([]byte{prefixCount}, tenantID...)
}

// tenantPrefix is the first key of a tenant's ids; prefixEnd of it bounds them.
func tenantPrefix(tenantID string) []byte {
	k := append([]byte{prefixID}, binary.AppendUvarint(nil, uint64(len(tenantID)))...)
	return append(k, tenantID...)
}

// prefixEnd is the smallest key above every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

var errBadKey = errors.New("malformed key")

// parseTenantID splits <len> <tenant> <id>.
func parseTenantID(k []byte) (tenantID, id string, err error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return "", "", errBadKey
	}
	return string(k[w : w+int(n)]), string(k[w+int(n):]), nil
}

// parseSeqKey splits a key of the seq index.
func parseSeqKey(k []byte) (seq uint64, tenantID, id string, err error) {
	if len(k) < 9 || k[0] != prefixSeq {
		return 0, "", "", errBadKey
	}
	tenantID, id, err = parseTenantID(k[9:])
	return binary.BigEndian.Uint64(k[1:9]), tenantID, id, err
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: value of %d bytes", errBadKey, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// get reads a key's value; found is false when it is absent.
func get(r pebble.Reader, key []byte) (value []byte, found bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	value = append([]byte(nil), v...)
	return value, true, closer.Close()
}

// has reports whether key is present, without copying its value.
func has(r pebble.Reader, key []byte) (bool, error) {
	_, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

func getUint(r pebble.Reader, key []byte) (uint64, bool, error) {
	v, ok, err := get(r, key)
	if err != nil || !ok {
		return 0, ok, err
	}
	n, err := decodeUint(v)
	return n, true, err
}

// pebbleLogger sends Pebble's messages to slog. Fatalf panics: Pebble calls
// it when it cannot go on (a failed WAL sync among them), and a counter
// that cannot trust its disk must stop rather than acknowledge.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("storage engine failed", "err", msg)
	panic("pebble: " + msg)
}

// cacheBytes is the size of the engine's block cache, and memTableBytes
// of each memtable. Pebble reserves the memtables (the live one, one kept
// for reuse, any waiting to be flushed) inside the block cache: with 32 MB
// memtables in a 64 MB cache, the cache held nothing and every lookup read
// its filter and index blocks from the file again (a round slowed 3x at
// 1 M ids). 32 MB memtables rather than 16 MB cut the CPU of
// BenchmarkLedger_Round beside 1 M ids by a quarter (fewer, larger
// flushes and compactions); the cache keeps about 128 MB for blocks.
const (
	cacheBytes    = 192 << 20
	memTableBytes = 32 << 20
)

// l0Files is how many sublevels level 0 (the flushed memtables: about one
// sublevel per flush here, as random ids make every flush overlap the
// last) collects before it is compacted into the next level; writes stop
// at 4x that (Pebble's defaults: 4 and 12). Every flush overlaps all of
// the next level, which each compaction rewrites: collecting 16 flushes
// rather than 4 rewrites it less often (go test -bench Ledger_Load
// -benchtime 2000x: 6.4 → 5.1-5.4 µs of CPU per id at 2 M ids; the
// engine's write amplification 2.6 → 2.0). The price, more sublevels for
// a lookup to check, is paid by few lookups: idFilter answers most.
const l0Files = 16

// openDB opens (or creates) the Pebble database in dir on fs.
func openDB(fs vfs.FS, dir string, logger *slog.Logger) (*pebble.DB, error) {
	// Most ids a round or a snapshot brings are new: their lookups miss,
	// which a bloom filter answers without reading a data block, once the
	// filter blocks are in the block cache (8 MB by default, too small to
	// hold them for millions of ids) and that cache is larger than the
	// memtables it also accounts for.
	c := pebble.NewCache(cacheBytes)
	defer c.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		FS:                 fs,
		Logger:             pebbleLogger{logger},
		Cache:              c,
		MemTableSize:       memTableBytes,
		FormatMajorVersion: pebble.FormatNewest,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.L0CompactionThreshold = l0Files
	opts.L0StopWritesThreshold = 4 * l0Files
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open the data in %s: %w", dir, err)
	}
	return db, nil
}

func loadMeta(db *pebble.DB) (meta, bool, error) {
	v, ok, err := get(db, metaKey)
	if err != nil || !ok {
		return meta{}, ok, err
	}
	var m meta
	if err := json.Unmarshal(v, &m); err != nil {
		return meta{}, false, fmt.Errorf("meta record: %w", err)
	}
	if m.Version != metaVersion {
		return meta{}, false, fmt.Errorf("data of layout version %d; this counter reads version %d", m.Version, metaVersion)
	}
	if m.ID == "" {
		return meta{}, false, errors.New("meta record has no id")
	}
	return m, true, nil
}

func encodeMeta(m meta) []byte {
	data, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("ledger: encode meta: %v", err)) // plain fields: cannot fail
	}
	return data
}

// EngineStats describes the storage engine, for metrics and tests.
type EngineStats struct {
	DiskBytes   uint64 // live sstables and write-ahead log
	CacheBytes  int64  // blocks held in the block cache
	CacheHits   int64
	CacheMisses int64
}

// Engine reports the storage engine's size and block cache use. It is
// safe to call concurrently with everything else.
func (l *Ledger) Engine() EngineStats {
	m := l.db.Metrics()
	return EngineStats{
		DiskBytes:   m.DiskSpaceUsage(),
		CacheBytes:  m.BlockCache.Size,
		CacheHits:   m.BlockCache.Hits,
		CacheMisses: m.BlockCache.Misses,
	}
}
