package bus

import "sync/atomic"

// counters are the broker's running totals, updated without locks.
type counters struct {
	published     atomic.Uint64
	delivered     atomic.Uint64
	dropped       atomic.Uint64
	lost          atomic.Uint64
	gapNotices    atomic.Uint64
	stalls        atomic.Uint64
	fdWaits       atomic.Uint64
	lagging       atomic.Uint64
	slowConsumers atomic.Uint64
	refusedFDs    atomic.Uint64
	refusedConns  atomic.Uint64
	notAllowed    atomic.Uint64
	errors        atomic.Uint64
	denied        atomic.Uint64
	// permitsForgotten counts reply permits dropped unused to make room.
	permitsForgotten atomic.Uint64
	sysRequests      atomic.Uint64
	// bytesIn and bytesOut are added to once per read batch and per
	// written batch, not per message: see conn.countIn.
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	fdsPassed atomic.Uint64
	// fdPayloads counts PUBs with a payload in a memfd accepted,
	// badPayloads those refused (bad payload), payloadWaits the times a
	// reader waited for its user's held payloads to be given back.
	fdPayloads, badPayloads, payloadWaits atomic.Uint64
}

// Stats is a snapshot of a Server's counters and of what it holds.
type Stats struct {
	Conns         int    // connections open now
	Subs          int    // subscriptions now
	Published     uint64 // PUB frames routed
	Delivered     uint64 // MSG frames queued for subscribers (broker events included; answers to a connection of its own requests, and gap notices, not)
	Dropped       uint64 // messages not queued because a subscriber's connection had no room
	Lost          uint64 // of those, reported to subscriptions in gap notices so far
	GapNotices    uint64 // gap notices sent
	Stalls        uint64 // times a publisher's reader waited for a receiver
	Lagging       uint64 // times a receiver did not catch up within a publisher's stall budget
	FDWaits       uint64 // times a read waited for room in its user's share of the broker's descriptors
	SlowConsumers uint64 // connections closed as slow consumers
	RefusedFDs    uint64 // PUBs refused for passing a socket connected to the broker
	RefusedConns  uint64 // connections refused: not allowed, over a budget, the limit, or at shutdown
	NotAllowed    uint64 // of those, refused because the allow-lists name neither their uid nor their groups
	Errors        uint64 // ERR frames sent to clients
	Requests      uint64 // broker requests ($SYS.req.) answered
	BudgetHits    uint64 // charges a budget refused
	Denied        uint64 // actions the policy refused (ERR permission denied)
	// PermitsForgotten counts requests that could no longer be answered
	// because their receiver held its limit of reply permits.
	PermitsForgotten uint64
	Users            int   // uids with connections or holdings now
	Memory           int64 // bytes held, as charged to the broker's memory budget
	FDs              int64 // descriptors held: two per connection, and passed ones

	// BytesIn counts the bytes of the frames read from clients, added
	// once per read batch; BytesOut those written to them, once per
	// written batch; FDsPassed the descriptors received with PUBs.
	BytesIn, BytesOut, FDsPassed uint64
	// FDPayloads counts PUBs whose payload was in a memfd that the broker
	// accepted, BadPayloads those it refused (bad payload), and
	// PayloadWaits the times a publisher's reader waited for room in its
	// user's held-payload budget (UserBudget.FDPayload).
	FDPayloads, BadPayloads, PayloadWaits uint64
	// PayloadBytes is the bytes of payloads in memfds the broker holds
	// now, as charged to users' UserBudget.FDPayload (publishers' while
	// routed, receivers' and monitors' per queued copy): pages it keeps
	// alive, not memory of its own.
	PayloadBytes int64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	u := s.led.usage()
	return Stats{
		Conns:            n,
		Subs:             s.index.Len() + s.monitors.Len(),
		Published:        s.stats.published.Load(),
		Delivered:        s.stats.delivered.Load(),
		Dropped:          s.stats.dropped.Load(),
		Lost:             s.stats.lost.Load(),
		GapNotices:       s.stats.gapNotices.Load(),
		Stalls:           s.stats.stalls.Load(),
		Lagging:          s.stats.lagging.Load(),
		FDWaits:          s.stats.fdWaits.Load(),
		SlowConsumers:    s.stats.slowConsumers.Load(),
		RefusedFDs:       s.stats.refusedFDs.Load(),
		RefusedConns:     s.stats.refusedConns.Load(),
		NotAllowed:       s.stats.notAllowed.Load(),
		Errors:           s.stats.errors.Load(),
		Requests:         s.stats.sysRequests.Load(),
		BudgetHits:       u.hits,
		Denied:           s.stats.denied.Load(),
		PermitsForgotten: s.stats.permitsForgotten.Load(),
		BytesIn:          s.stats.bytesIn.Load(),
		BytesOut:         s.stats.bytesOut.Load(),
		FDsPassed:        s.stats.fdsPassed.Load(),
		FDPayloads:       s.stats.fdPayloads.Load(),
		BadPayloads:      s.stats.badPayloads.Load(),
		PayloadWaits:     s.stats.payloadWaits.Load(),
		Users:            u.users,
		Memory:           u.memory,
		FDs:              u.fds,
		PayloadBytes:     u.payload,
	}
}
