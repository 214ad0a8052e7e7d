package bus

import (
	"fmt"
	"strconv"

	"github.com/busd/busd/bus/wire"
)

// Delivery is at most once, in order per publisher, and every loss is
// reported: a message a subscription's connection has no room for is
// dropped and counted on the subscription (policy "drop", the default),
// and the subscription gets a gap notice saying how many it lost, in
// place of them: before its next message, or once the connection has
// caught up if none comes. With policy "disconnect" the connection is
// closed instead, the backlog discarded so that the ERR saying why goes
// first.

// lossReason names the limit a dropped message did not fit in, for the
// gap notice and the ERR.
type lossReason uint8

const (
	lossLagging        lossReason = iota // it fell behind and did not catch up within a publisher's stall budget
	lossQueue                            // the connection's MaxPending
	lossQueueFDs                         // the connection's MaxPendingFDs
	lossUserBytes                        // the uid's output budget
	lossUserFDs                          // the uid's output descriptor budget
	lossMemory                           // the uid's share of the broker's memory
	lossFDPayload                        // a payload in a memfd, which the connection does not take (payload.go)
	lossMonitorPayload                   // a monitor's copy of a payload in a memfd, for which its uid had no room (monitor.go)
	lossHeldPayload                      // a receiver's copy of a payload in a memfd, for which its uid's held payload budget had no room (payloadCopy)
	lossLaggingFDs                       // as lossLagging, by descriptors: a message with some, while it holds more than laggingMaxFDs
)

// reasonText says what lossReason r means for this connection.
func (c *conn) reasonText(r lossReason) string {
	cfg := &c.srv.cfg
	switch r {
	case lossLagging:
		return fmt.Sprintf("this connection fell more than %d bytes behind and did not catch up within %v", paceMark, cfg.StallBudget)
	case lossLaggingFDs:
		return fmt.Sprintf("this connection fell more than %d descriptors behind and did not catch up within %v", lagFDs(cfg), cfg.StallBudget)
	case lossQueue:
		return fmt.Sprintf("this connection's queue of %d bytes is full", cfg.MaxPending)
	case lossQueueFDs:
		return fmt.Sprintf("this connection's queue of %d descriptors is full", cfg.MaxPendingFDs)
	case lossUserBytes:
		return fmt.Sprintf("%s's output budget of %d bytes is used up", c.acct.label, cfg.User.Output)
	case lossUserFDs:
		return fmt.Sprintf("%s's output budget of %d descriptors is used up", c.acct.label, cfg.User.OutputFDs)
	case lossFDPayload:
		return "its payload was in a memfd, and this connection's HELLO did not say it takes those (fd_payloads)"
	case lossHeldPayload:
		return fmt.Sprintf("its payload was in a memfd, and %s's held payload budget of %d bytes had no room for this copy", c.acct.label, cfg.User.FDPayload)
	case lossMonitorPayload:
		return fmt.Sprintf("its payload was in a memfd, and %s's held payload budget of %d bytes (or its share of the broker's descriptors) had no room for this monitor's copy", c.acct.label, cfg.User.FDPayload)
	}
	return fmt.Sprintf("%s's share of the broker's memory (%d bytes in all) is used up", c.acct.label, cfg.MaxMemory)
}

// refuseLocked applies s's slow-consumer policy to m, a message its
// connection had no room for.
func (c *conn) refuseLocked(s *subscription, m *outMsg) {
	c.srv.stats.dropped.Add(1)
	c.dropped++
	if s.flags&wire.SubDisconnect != 0 {
		c.srv.stats.slowConsumers.Add(1)
		c.log.Info("closing a slow consumer", "sid", s.sid, "pattern", s.pattern, "reason", c.reasonText(c.lossReason))
		c.closeLocked(wire.Errorf(wire.CodeSlowConsumer,
			"subscription %d (%q) had no room for a message: %s; it asked to be disconnected rather than lose messages",
			s.sid, s.pattern, c.reasonText(c.lossReason)))
		return
	}
	if !s.inGaps {
		s.inGaps = true
		c.gaps = append(c.gaps, s)
	}
	s.lost.Add(1)
	s.reason = c.lossReason
	if !m.dropsEvent {
		c.noteLossLocked(s, 1)
	}
}

// dropFast counts a lost message for s without taking its connection's
// lock, when that is all there is to do: the connection takes nothing now,
// and s drops rather than disconnects and has lost messages since its last
// notice already. The publisher's reader c keeps the count and adds it to
// s in flushDrops, once per read batch, so a stopped subscriber costs each
// publisher an atomic load or two per message. It reports whether it
// counted the loss.
func (c *conn) dropFast(s *subscription) bool {
	if !s.c.full.Load() || s.flags&wire.SubDisconnect != 0 || s.lost.Load() == 0 && c.dropSub != s {
		return false
	}
	if c.dropSub != s {
		c.flushDrops()
		c.dropSub = s
	}
	c.dropN++
	return true
}

// flushDrops adds the losses dropFast counted to their subscription, and
// makes sure a gap notice will report them. The reader calls it at the end
// of each batch, and before it queues anything for that subscription, so
// that a notice always comes before the first message after the losses it
// reports.
func (c *conn) flushDrops() {
	s, n := c.dropSub, c.dropN
	c.dropSub, c.dropN = nil, 0
	if n == 0 {
		return
	}
	r := s.c
	r.mu.Lock()
	if !s.inGaps && !s.removed {
		s.inGaps = true
		r.gaps = append(r.gaps, s)
	}
	s.lost.Add(n)
	r.dropped += n
	r.noteLossLocked(s, n)
	r.mu.Unlock()
	c.srv.stats.dropped.Add(n)
}

// noticeHeaders returns the headers of a gap notice for s reporting lost
// messages.
func (c *conn) noticeHeaders(s *subscription, lost uint64) wire.Headers {
	h := wire.AppendField(nil, wire.DroppedHeader, strconv.FormatUint(lost, 10))
	return wire.AppendField(h, wire.ReasonHeader, c.reasonText(s.reason))
}

// noticeLen returns the size of s's gap notice. (dropFast may make the
// count a digit longer before it is sent: a few bytes the room check does
// not see.)
func (c *conn) noticeLen(s *subscription) int {
	return wire.MsgHeadLen + len(s.pattern) + len(c.noticeHeaders(s, s.lost.Load()))
}

// appendNoticeLocked queues s's gap notice: an empty MSG from the broker
// (origin connection 0) on the subscription, its topic the subscription's
// pattern, with the headers Bus-Dropped (how many were lost since the
// last notice) and Bus-Reason.
func (c *conn) appendNoticeLocked(s *subscription) {
	lost := s.lost.Swap(0)
	hdrs := c.noticeHeaders(s, lost)
	f := wire.Frame{
		Header: wire.Header{Op: wire.OpPub, TopicLen: uint16(len(s.pattern)), HdrLen: uint32(len(hdrs))},
		Topic:  []byte(s.pattern), Headers: hdrs,
	}
	size := wire.MsgHeadLen + len(s.pattern) + len(hdrs)
	c.out.Commit(wire.AppendMsg(c.out.Reserve(size), s.sid, &c.srv.origin, &f))
	c.pending += size
	c.srv.stats.lost.Add(lost)
	c.srv.stats.gapNotices.Add(1)
}

// flushGapsLocked queues the gap notices that wait for room, for
// subscriptions that got no message since their loss.
func (c *conn) flushGapsLocked() {
	if len(c.gaps) == 0 || c.state != stateOpen {
		return
	}
	keep := c.gaps[:0]
	for _, s := range c.gaps {
		switch {
		case s.removed || s.lost.Load() == 0:
			s.inGaps = false
		case c.makeRoomLocked(c.noticeLen(s), 0):
			c.appendNoticeLocked(s)
			s.inGaps = false
		default:
			keep = append(keep, s)
		}
	}
	clear(c.gaps[len(keep):])
	c.gaps = keep
	if c.out.Len() > 0 {
		c.wake()
	}
}
