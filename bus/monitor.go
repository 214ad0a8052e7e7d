package bus

import (
	"slices"
	"strconv"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// Monitors. A SUB with wire.SubMonitor is a passive watcher, like
// dbus-monitor: it gets a copy of every message its pattern matches and
// the policy lets it see, and changes nothing about where the message goes
// or when. So monitors live in an index of their own (Server.monitors),
// which routing consults only after it has delivered a message to its
// receivers:
//
//   - a monitor is not a receiver: a request only monitors match still gets
//     "no responders" at once, a queue group's message still goes to one
//     member, a dial still goes to one listener, and no RECEIPT counts it;
//   - it never gets a message's own descriptors, which would let a watcher
//     keep open files meant for one receiver; its copy has none and a
//     wire.FDsHeader saying how many there were. A payload in a memfd
//     (payload.go) is the message's payload, not one of its files: the
//     copy carries that descriptor (and the flag), and the header counts
//     the others;
//   - it is never waited for: what its connection has no room for is
//     dropped at once and reported as a gap, and it does not make the
//     publisher pause (pace.go), however far behind it is;
//   - it gets no permit to answer the requests it sees (permits.go).
//
// Its queue is its connection's like any other, charged to its own user's
// budgets: a watcher that does not read costs the broker what any stopped
// subscriber does, and never its publishers.

// isMonitor reports whether s is a monitor subscription.
func (s *subscription) isMonitor() bool { return s.flags&wire.SubMonitor != 0 }

// indexAdd puts s in its index: monitors apart, so that routing to
// receivers never sees them.
func (srv *Server) indexAdd(s *subscription) error {
	if !s.isMonitor() {
		return srv.index.Add(s.pattern, s.group, s)
	}
	err := srv.monitors.Add(s.pattern, s.group, s)
	if err == nil {
		srv.nMonitors.Add(1)
	}
	return err
}

// indexRemove takes s out of its index.
func (srv *Server) indexRemove(s *subscription) {
	if !s.isMonitor() {
		srv.index.Remove(s.pattern, s.group, s)
	} else if srv.monitors.Remove(s.pattern, s.group, s) == nil {
		srv.nMonitors.Add(-1)
	}
}

// checkMonitorSub refuses what a monitor SUB cannot be: one in a queue
// group (it would take the group's messages from its members), or one
// asking to be disconnected when slow (a monitor always drops: nobody
// waits for it, so it would be closed at the first burst).
func checkMonitorSub(f *wire.Frame) error {
	if f.Flags&wire.SubMonitor == 0 {
		return nil
	}
	if f.Flags&wire.SubDisconnect != 0 {
		return wire.Errorf(wire.CodeBadFrame, "SUB flags %#x: a monitor subscription always drops what it has no room for", f.Flags)
	}
	if len(f.Reply) > 0 {
		return wire.Errorf(wire.CodeInvalidGroup, "a monitor subscription joins no queue group (got %q)", f.Reply)
	}
	return nil
}

// toMonitors gives a copy of m to each monitor in mons that may see it.
// set is m's descriptors, nil for none: monitors never get them, but for
// a payload in a memfd, of which each gets a duplicate of its own
// (monitorPayload). The copy
// of a message with descriptors, or with a wire.FDsHeader its publisher
// set, ends with the broker's wire.FDsHeader, so that the last one a
// monitor sees is always the true count.
func (c *conn) toMonitors(mons []*subscription, m *outMsg, set *fdSet) {
	if _, forged := m.pub.Headers.Get(wire.FDsHeader); set != nil || m.nfds > 0 || forged {
		var f wire.Frame
		var mm outMsg
		c.monitorCopy(&mm, &f, m)
		m = &mm
	}
	payload := set != nil && m.pub.Flags&wire.PubPayloadFD != 0
	for _, s := range mons {
		if !s.admits(m) || c.dropFast(s) {
			continue
		}
		if c.dropSub == s {
			c.flushDrops()
		}
		r := s.c
		var own *fdSet
		if payload && r.fdPayloads { // else enqueueMsg reports the loss (fd_payloads)
			if own = c.srv.monitorPayload(r, set); own == nil {
				r.refuseMonitorPayload(s)
				continue
			}
		}
		// passive: dropped at once if there is no room, and never a
		// reason to pause this publisher (behind is not looked at).
		o, wake, _ := r.enqueueMsg(s, m, own, passive)
		if own != nil {
			own.Release() // the router's reference
		}
		if wake && !slices.Contains(c.wakes, r) {
			c.wakes = append(c.wakes, r)
		}
		if o == queued {
			c.srv.stats.delivered.Add(1)
		}
	}
}

// monitorCopy sets mm up as m without its descriptors, with a header
// saying how many there were, in f. A large message's payload is copied
// whole, once for all monitors: its pieces follow headers that are not the
// copy's. A payload in a memfd stays: the copy keeps the flag and that
// one descriptor (each monitor its own duplicate: monitorPayload), and the
// header counts the others.
func (c *conn) monitorCopy(mm *outMsg, f *wire.Frame, m *outMsg) {
	*f = *m.pub
	f.NFDs = 0
	withheld := m.nfds
	if f.Flags&wire.PubPayloadFD != 0 {
		f.NFDs = 1
		withheld--
	}
	f.Headers = wire.AppendField(slices.Clip(f.Headers), wire.FDsHeader, strconv.Itoa(withheld))
	f.HdrLen = uint32(len(f.Headers))
	if m.body != nil {
		// The pieces are m.body's: route took them from the frame.
		f.Payload = largePayload(m.pub, m.body.pieces)
		f.Body = nil
	}
	*mm = outMsg{origin: m.origin, pub: f, private: m.private, replyInbox: m.replyInbox, retainSeq: m.retainSeq,
		named: m.named, owner: m.owner}
	mm.size = wire.MsgHeadLen + f.Size() - wire.HeaderLen
	mm.nfds = int(f.NFDs)
}

// monitorPayload returns the descriptor a monitor's copy of a message
// whose payload is in a memfd carries, for r, the monitor's connection: a
// duplicate of set's payload descriptor, its own, charged to r's user
// (the payload's size against its held payloads, the descriptor against
// its share of the broker's descriptors) until it is closed. A view of
// the publisher's descriptor would keep the publisher's charge for as
// long as the monitor holds it, so a monitor that stopped reading would
// make the publisher wait for its budget and be refused: a passive
// watcher must change nothing for the publisher. nil if r's user has no
// room, or the duplicate cannot be made: the copy is lost.
func (s *Server) monitorPayload(r *conn, set *fdSet) *fdSet {
	led := s.led
	if !led.chargeHeldCopy(r.acct, set.size) {
		return nil
	}
	fd, err := unix.FcntlInt(uintptr(set.fds[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		led.uncharge(r.acct, kFDPayload, set.size)
		led.give(r.acct, poolFDs, 1)
		return nil
	}
	own := newFDSet(s, r.acct, []int{fd})
	own.payload = set.size
	return own
}

// largePayload returns a copy of the payload of f, a large frame read in
// pieces, whose sections before the payload are at the start of the first.
// f is the frame as the sender sent it.
func largePayload(f *wire.Frame, pieces [][]byte) []byte {
	skip := int(f.TopicLen) + int(f.ReplyLen) + int(f.HdrLen)
	p := make([]byte, 0, f.PayloadLen)
	for _, piece := range pieces {
		n := min(skip, len(piece))
		skip -= n
		p = append(p, piece[n:]...)
	}
	return p
}
