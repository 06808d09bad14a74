// Package counter is the counter service: it holds one copy of the data,
// takes part in the coordinator's rounds, answers fenced reads, serves and
// installs snapshots, and registers itself with the coordinator.
package counter

import (
	"sync"

	"github.com/distributed-counter/distributed-counter/internal/ledger"
	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Service serialises access to the counter's ledger.
type Service struct {
	id  string // the ledger's identity, fixed for its life
	url string // where the coordinator reaches this counter now

	mu     sync.Mutex
	ledger *ledger.Ledger
}

// NewService serves the ledger l, reachable at url.
func NewService(l *ledger.Ledger, url string) *Service {
	return &Service{id: l.ID(), url: url, ledger: l}
}

// with runs fn with the ledger locked.
func (s *Service) with(fn func(l *ledger.Ledger) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.ledger)
}

// AdoptFence raises the ledger's fence (see ledger.AdoptFence).
func (s *Service) AdoptFence(epoch uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledger.AdoptFence(epoch)
}

// Status reports the counter's position and address.
func (s *Service) Status() wire.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.ledger.Status()
	st.URL = s.url
	return st
}
