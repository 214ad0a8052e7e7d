package bus

import "sync/atomic"

// counters are the broker's running totals, updated without locks.
type counters struct {
	published atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
	errors    atomic.Uint64
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	Conns     int    // connections open now
	Subs      int    // subscriptions now
	Published uint64 // PUB frames routed
	Delivered uint64 // MSG frames queued for subscribers
	Dropped   uint64 // messages not queued because a subscriber was too slow
	Errors    uint64 // ERR frames sent to clients
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return Stats{
		Conns:     n,
		Subs:      s.index.Len(),
		Published: s.stats.published.Load(),
		Delivered: s.stats.delivered.Load(),
		Dropped:   s.stats.dropped.Load(),
		Errors:    s.stats.errors.Load(),
	}
}
