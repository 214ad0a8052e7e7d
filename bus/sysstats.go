package bus

import (
	"cmp"
	"slices"
	"time"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
)

// Statistics requests: "$SYS.req.stats", "$SYS.req.conns" and
// "$SYS.req.subs" (docs/PROTOCOL.md, section 3.2). Who may ask is the
// policy's, as for every broker request; what the lists show is too: a
// connection of the broker's own uid, or one a rule grants monitor on the
// request's topic, sees every uid's connections, any other only its own
// uid's, which the default rules let every uid ask about. The answer is
// built by the asker's reader and queued to it like any reply, within its
// limits and charged to its user: a large broker's lists are bounded by
// wire.MaxListLimit entries, and what building one takes is charged too
// (chargeAnswer).

// Building a list answer takes memory in proportion to what it goes
// through, which any uid may ask about its own in a loop, from each of its
// connections at once; so it is charged to the asker's user's input (and
// the broker's memory) until the answer is queued, where its output grant
// takes over, and with no room the answer is 429. These are upper bounds
// of what one entry takes: in the counts and the list built, and encoded.
const (
	connEntryCost = 512 // a ConnStats, its name at most wire.MaxNameLen, encoded
	subEntryCost  = 192 // a map entry and a SubStats, beyond the pattern and group
)

// chargeAnswer charges cost to c's user's input for building an answer,
// and returns the answer to give if there is no room: ok false.
func (c *conn) chargeAnswer(what string, cost int64) (sysAnswer, bool) {
	if err := c.srv.led.charge(c.acct, kInput, cost); err != nil {
		return sysAnswer{status: wire.StatusNoRoom, reason: "no room to list the " + what + ": " + err.Error()}, false
	}
	return sysAnswer{charged: cost}, true
}

// seesAll reports whether c's answers to the list request on topic show
// every uid's connections.
func (c *conn) seesAll(topic string) bool {
	return c.origin.UID == c.srv.origin.UID || c.subject.Load().Decide(policy.Monitor, topic).Allow
}

// answerStats answers "$SYS.req.stats": the broker's totals. They count
// every uid's connections whoever asks: totals, not anyone's traffic, and
// asking takes a policy rule (only the broker's uid by default).
func (c *conn) answerStats(payload []byte) sysAnswer {
	if err := wire.DecodeInfoRequest(payload); err != nil {
		return badRequest(err.Error())
	}
	st := c.srv.Stats()
	body, _ := wire.AppendBody(nil, &wire.BrokerStats{
		Conns: uint64(st.Conns), Subs: uint64(st.Subs), Users: uint64(st.Users),
		MsgsIn: st.Published, BytesIn: st.BytesIn, MsgsOut: st.Delivered, BytesOut: st.BytesOut,
		Dropped: st.Dropped, FDsPassed: st.FDsPassed, FDsHeld: st.FDs, FDsMax: int64(c.srv.cfg.MaxFDs),
		Memory: st.Memory, MemoryMax: c.srv.cfg.MaxMemory,
		Requests: st.Requests, Errors: st.Errors, Slow: st.SlowConsumers,
		FDPayloads: st.FDPayloads, BadPayloads: st.BadPayloads, FDPayloadHeld: st.PayloadBytes,
	}) // numbers: it cannot fail
	return sysAnswer{payload: body}
}

// visibleConns returns the served connections c may see, sorted by id:
// every one, or those of its uid.
func (c *conn) visibleConns(all bool) []*conn {
	s := c.srv
	s.mu.Lock()
	from := s.byUID[c.origin.UID] // only its own: no look at the others'
	if all {
		from = s.byID
	}
	conns := make([]*conn, 0, len(from))
	for _, t := range from {
		conns = append(conns, t)
	}
	s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	return conns
}

// answerConns answers "$SYS.req.conns": the connections with ids after
// the request's "after", at most its "limit" of them.
func (c *conn) answerConns(payload []byte) sysAnswer {
	req, err := wire.DecodeListRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	list := wire.ConnList{All: c.seesAll(wire.SysReqConns), Conns: []wire.ConnStats{}}
	conns := c.visibleConns(list.All)
	a, ok := c.chargeAnswer("connections", int64(8*len(conns))+connEntryCost*int64(min(uint64(len(conns)), req.Limit)))
	if !ok {
		return a
	}
	now := time.Now()
	for _, t := range conns {
		if t.id <= req.After {
			continue
		}
		if uint64(len(list.Conns)) == req.Limit {
			list.Truncated = true
			break
		}
		if cs, open := t.connStats(now); open {
			list.Conns = append(list.Conns, cs)
		}
	}
	a.payload = fitEntries(c, list, list.Conns, list.Truncated, func(l *wire.ConnList, e []wire.ConnStats, cut bool) { l.Conns, l.Truncated = e, cut })
	return a
}

// connStats returns what a "$SYS.req.conns" answer says of c, and whether
// it lists c: open, its handshake done.
func (c *conn) connStats(now time.Time) (wire.ConnStats, bool) {
	last := c.since
	if ns := c.lastIn.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	cs := wire.ConnStats{
		ConnID: c.id, PID: c.origin.PID, UID: c.origin.UID, GID: c.origin.GID,
		Since: uint64(c.since.UnixNano()), MsgsIn: c.msgsIn.Load(), BytesIn: c.bytesIn.Load(),
		IdleMS: uint64(max(now.Sub(last), 0) / time.Millisecond),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.Name, cs.Subs = c.name, uint64(len(c.subs))
	cs.MsgsOut, cs.BytesOut, cs.Dropped = c.msgsOut, c.bytesOut, c.dropped
	cs.Pending, cs.PendingFDs = uint64(c.pending), uint64(c.pendingFDs)
	return cs, c.state == stateOpen && c.helloDone
}

// answerSubs answers "$SYS.req.subs": each pattern, in each queue group,
// with its count of subscriptions and of monitors, sorted by pattern and group, at most
// the request's "limit" of them.
func (c *conn) answerSubs(payload []byte) sysAnswer {
	req, err := wire.DecodeListRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	list := wire.SubList{All: c.seesAll(wire.SysReqSubs), Subs: []wire.SubStats{}}
	conns := c.visibleConns(list.All)
	cost := int64(8 * len(conns))
	for _, t := range conns {
		t.mu.Lock()
		for _, s := range t.subs {
			cost += subEntryCost + int64(len(s.pattern)+len(s.group))
		}
		t.mu.Unlock()
	}
	a, ok := c.chargeAnswer("subscriptions", cost)
	if !ok {
		return a
	}
	type count struct{ subs, monitors uint64 }
	counts := map[subKey]count{}
	for _, t := range conns {
		t.mu.Lock()
		for _, s := range t.subs {
			k := subKey{pattern: s.pattern, group: s.group}
			n := counts[k]
			if s.isMonitor() {
				n.monitors++
			} else {
				n.subs++
			}
			counts[k] = n
		}
		t.mu.Unlock()
	}
	for k, n := range counts {
		list.Subs = append(list.Subs, wire.SubStats{Pattern: k.pattern, Group: k.group, Subs: n.subs, Monitors: n.monitors})
	}
	slices.SortFunc(list.Subs, func(a, b wire.SubStats) int {
		return cmp.Or(cmp.Compare(a.Pattern, b.Pattern), cmp.Compare(a.Group, b.Group))
	})
	list.Total = uint64(len(list.Subs))
	if list.Total > req.Limit {
		list.Subs, list.Truncated = list.Subs[:req.Limit], true
	}
	a.payload = fitEntries(c, list, list.Subs, list.Truncated, func(l *wire.SubList, e []wire.SubStats, cut bool) { l.Subs, l.Truncated = e, cut })
	return a
}
