package clustertest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// disk is what a counter process starts on: its file system, and the
// identity a new data directory on it is given.
type disk struct {
	fs *vfs.MemFS
	id string
}

// errCut is what a crashed process's connections and calls fail with.
var errCut = errors.New("clustertest: the process crashed")

// cutSwitch cuts one process off the network at once, both ways: its
// accepted connections are closed and refuse every further write, and its
// outbound calls fail. That is the instant of a crash: no answer leaves
// the process afterwards, so nothing it acknowledges can be written after
// the disk is cloned.
type cutSwitch struct {
	mu    sync.Mutex
	cut   bool
	conns map[*cutConn]struct{}
}

func (s *cutSwitch) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = false
}

func (s *cutSwitch) isCut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut
}

// trip cuts the process off and closes every connection it accepted.
func (s *cutSwitch) trip() {
	s.mu.Lock()
	s.cut = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

func (s *cutSwitch) listener(ln net.Listener) net.Listener { return &cutListener{Listener: ln, s: s} }

func (s *cutSwitch) transport(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if s.isCut() {
			return nil, errCut
		}
		resp, err := next.RoundTrip(req)
		if err == nil && s.isCut() {
			_ = resp.Body.Close()
			return nil, errCut
		}
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type cutListener struct {
	net.Listener
	s *cutSwitch
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.cut {
		_ = c.Close()
		return cc, nil // its reads and writes fail: the server drops it
	}
	if l.s.conns == nil {
		l.s.conns = make(map[*cutConn]struct{})
	}
	l.s.conns[cc] = struct{}{}
	return cc, nil
}

type cutConn struct {
	net.Conn
	s *cutSwitch
}

// Write fails once the switch is tripped. A write under way when it trips
// either went out before trip closed the connection (and so before the
// disk was cloned) or fails with the closed connection: no answer leaves
// after the clone. trip never waits for a write, which a peer that does
// not read could block.
func (c *cutConn) Write(p []byte) (int, error) {
	if c.s.isCut() {
		return 0, errCut
	}
	return c.Conn.Write(p)
}

func (c *cutConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// ID is the counter's identity (its data directory's).
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// Crash kills the process at once, like a power cut: no answer leaves it
// from this instant, and its disk keeps only what it had synced. Start
// runs it again on that disk. The coordinator keeps its state file (it
// syncs every write of it).
func (n *Node) Crash() { Crash(n) }

// Crash cuts every node off at the same instant, then keeps of each disk
// only what was synced, then stops the processes: a power cut of them all.
func Crash(nodes ...*Node) {
	for _, n := range nodes {
		n.cut.trip()
	}
	for _, n := range nodes {
		n.mu.Lock()
		if n.fs != nil {
			n.fs = n.fs.CrashClone(vfs.CrashCloneCfg{})
		}
		n.mu.Unlock()
	}
	for _, n := range nodes {
		n.Stop()
	}
}

// Wipe gives a stopped counter an empty disk: it starts again as a new
// counter, with a new identity.
func (n *Node) Wipe(c *Cluster) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil {
		panic(fmt.Sprintf("clustertest: wipe of %s while it runs", n.Name))
	}
	n.wipes++
	n.fs, n.id = vfs.NewCrashableMem(), fmt.Sprintf("%s.w%d", n.Name, n.wipes)
	c.counters.SetAddress(n.id, n.URL)
}
