package bus

import (
	"github.com/busd/busd/bus/wire"
)

// outcome is what offering a message to a subscription did. The order
// matters: a message offered to several is as delivered as its best
// outcome.
type outcome uint8

const (
	gone    outcome = iota // the connection is closing, or the subscription was removed: a queue group picks another member
	unfit                  // the connection does not take such a message (a payload in a memfd): lost, and reported, but no wait would help
	full                   // no room: the caller may wait, or the subscription's policy applies
	dropped                // no room, and the subscription's policy was applied
	queued                 // queued for the writer
)

// enqueue modes: what enqueueMsg does with a message that does not fit.
type enqueueMode uint8

const (
	tryOnly    enqueueMode = iota // nothing: the caller tries another queue group member
	unlessWait                    // apply the policy if the connection is lagging (nobody waits for it)
	final                         // apply the policy: the publisher has waited
	passive                       // a monitor's copy: apply the policy at once, and grant no permit (monitor.go)
)

// enqueueMsg appends the MSG that delivers m to subscription s, with a gap
// notice before it if s lost messages since the last one, if the
// connection has room for both; if not, mode says whether s's policy
// applies now, under the same lock. (Once a lagging receiver has lost a
// message, its further losses are counted without the lock: dropFast.)
// wake says the connection was idle (the caller must wake its writer),
// behind that it now has more queued than publishers add to without pause
// (pace.go).
func (c *conn) enqueueMsg(s *subscription, m *outMsg, set *fdSet, mode enqueueMode) (o outcome, wake, behind bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen || s.removed {
		return gone, false, false
	}
	if m.pub.Flags&wire.PubPayloadFD != 0 && !c.fdPayloads {
		if mode == tryOnly {
			return gone, false, false // a queue group's next member may take it
		}
		c.refuseFDPayloadLocked(s) // payload.go
		return unfit, false, false
	}
	// The message first: the notice's size is worked out only once the
	// message fits, since a connection that is losing messages is asked
	// for room for each.
	lost := s.lost.Load() > 0
	if !c.makeRoomLocked(m.size, m.nfds) || lost && !c.makeRoomLocked(m.size+c.noticeLen(s), m.nfds) {
		if mode == final || mode == passive || mode == unlessWait && c.lagging {
			c.refuseLocked(s, m)
			return dropped, false, false
		}
		return full, false, false
	}
	// A payload in a memfd: this copy is charged to this connection's
	// user while it waits here (payloadCopy), never to the publisher, and
	// never waited for: no room in the budget loses the message.
	var rel wire.Releaser = set
	if set != nil && set.size != 0 {
		if !set.chargeCopy(c.acct) {
			if mode == tryOnly {
				return full, false, false // another queue group member may have room
			}
			c.lossReason = lossHeldPayload
			c.refuseLocked(s, m)
			return dropped, false, false
		}
		rel = &payloadCopy{set: set, acct: c.acct}
	}
	wake = c.out.Len() == 0
	if lost {
		c.appendNoticeLocked(s)
	}
	if set != nil {
		set.ref()
		c.out.AddFDs(set.fds, rel)
		c.pendingFDs += m.nfds
	}
	switch {
	case m.encoded != nil:
		b := c.out.Reserve(len(m.encoded))
		n := len(b)
		b = append(b, m.encoded...)
		wire.SetID(b[n:], s.sid)
		c.out.Commit(b)
	case m.body != nil: // large: the receivers share the publisher's pieces
		c.out.Commit(wire.AppendMsgHead(c.out.Reserve(wire.MsgHeadLen), s.sid, m.origin, &m.pub.Header))
		m.body.ref()
		c.out.AppendRef(m.body.pieces, m.body)
	case m.size > wire.ChunkSize:
		var head [wire.MsgHeadLen]byte
		f := m.pub
		c.out.AppendCopy(wire.AppendMsgHead(head[:0], s.sid, m.origin, &f.Header), f.Topic, f.Reply, f.Headers, f.Payload)
	default:
		c.out.Commit(wire.AppendMsg(c.out.Reserve(m.size), s.sid, m.origin, m.pub))
	}
	c.pending += m.size
	c.msgsOut++
	if m.replyInbox != "" && m.replyInbox != c.inbox && mode != passive {
		c.grantPermitLocked(m.origin.Conn, m.pub.Topic, m.pub.Reply)
	}
	return queued, wake, c.behindLocked()
}

// roomLocked reports whether the connection's queue takes size more bytes
// and nfds more descriptors. An empty queue takes any one message; a
// lagging connection (pace.go) takes nothing more while it holds more than
// lagMark, and no descriptors while it holds more than half its
// descriptor limit (twice the descriptor pace mark, as lagMark is for
// bytes).
func (c *conn) roomLocked(size, nfds int) bool {
	cfg := &c.srv.cfg
	switch {
	case c.pending == 0:
		return true
	case c.lagging && c.pending > lagMark:
		c.lossReason = lossLagging
		c.setFullLocked()
		return false
	case c.lagging && nfds > 0 && c.pendingFDs > laggingMaxFDs(cfg):
		c.lossReason = lossLaggingFDs // not full: it still takes messages without descriptors
		return false
	case c.pending+size > cfg.MaxPending:
		c.lossReason = lossQueue
		return false
	case nfds > 0 && c.pendingFDs > 0 && c.pendingFDs+nfds > cfg.MaxPendingFDs:
		c.lossReason = lossQueueFDs
		return false
	}
	return true
}

// makeRoomLocked is roomLocked, and also charges the connection's user
// for the bytes and descriptors, in grants (grant.go).
func (c *conn) makeRoomLocked(size, nfds int) bool {
	return c.roomLocked(size, nfds) && c.growGrantLocked(size, nfds)
}

// enqueueControl appends a frame of the broker's own (PONG, INFO, ERR) in
// answer to one of the connection's frames, and schedules the writer. It
// is queued whatever the limits: only the connection's own frames cause
// control output, and its reader stops reading once controlLimit of it
// waits (see waitControlDrained). Only the reader calls it.
func (c *conn) enqueueControl(frame []byte) {
	c.mu.Lock()
	wake := c.state != stateClosed && c.out.Len() == 0
	if c.state != stateClosed {
		c.growGrantLocked(len(frame), 0) // counted; a refusal is bounded by controlLimit
		c.out.Append(frame)
		c.pending += len(frame)
		c.ctrlBytes += len(frame)
		c.ctrlEnd = c.out.End()
		c.ctrlOver = c.ctrlBytes > controlLimit
	}
	c.mu.Unlock()
	if wake {
		c.wake()
	}
}

// controlLimit bounds the control output (PONG, ERR) a connection's own
// frames may leave queued: past it the broker reads nothing more from the
// connection until the client has read it. A client that sends PINGs and
// never reads its PONGs grew the broker by gigabytes without it.
const controlLimit = 64 << 10

// waitControlDrained waits until the writer has written the control
// frames queued so far: until the client reads them, or until it is
// closed for not reading (WriteTimeout).
func (c *conn) waitControlDrained() error {
	c.noteOnce(logControl, "pausing a client that does not read its control frames", "limit", controlLimit)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.ctrlBytes > controlLimit && c.state == stateOpen {
		ch := c.progressLocked()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.quit:
		}
		c.mu.Lock()
	}
	c.ctrlOver = false
	if c.state != stateOpen {
		return errShuttingDown
	}
	return nil
}

// progressLocked returns a channel closed when the writer next finishes a
// batch (or the connection closes).
func (c *conn) progressLocked() chan struct{} {
	if c.progress == nil {
		c.progress = make(chan struct{})
	}
	return c.progress
}

// wakeWaitersLocked releases everyone waiting for the writer's progress.
func (c *conn) wakeWaitersLocked() {
	if c.progress != nil {
		close(c.progress)
		c.progress = nil
	}
}

// wake tells the writer there is output; a wake-up already pending covers it.
func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// closeLocked ends the connection with the fatal error err: what is queued
// and has not started to go out is dropped, the ERR goes next, and the
// writer closes the socket once it is written (or once the peer has not
// read for WriteTimeout). The reader stops.
func (c *conn) closeLocked(err *wire.Error) {
	if c.state != stateOpen {
		return
	}
	n, nfds := c.out.Discard()
	c.pending -= n
	c.pendingFDs -= nfds
	c.drainLocked(err)
	c.setFullLocked()
}

// setFullLocked brings full up to date: the connection takes no message
// while it is open, lagging and holding more than lagMark.
func (c *conn) setFullLocked() {
	c.full.Store(c.state == stateOpen && c.lagging && c.pending > lagMark)
}

// drainLocked queues err as an ERR frame after what is queued and puts the
// connection in the draining state: the writer sends everything, then
// closes the socket. Shutdown uses it so that clients get what was
// published before, and, before the ERR, the gap notices of losses not
// yet reported (whatever the room: one per subscription at most), so that
// every loss is reported even when no message follows it.
func (c *conn) drainLocked(err *wire.Error) {
	if c.state != stateOpen {
		return
	}
	c.closedBy = err
	for _, s := range c.gaps {
		if !s.removed && s.lost.Load() > 0 {
			c.growGrantLocked(c.noticeLen(s), 0) // counted; the notices are bounded by the subscriptions
			c.appendNoticeLocked(s)
		}
		s.inGaps = false
	}
	c.gaps = c.gaps[:0]
	body, _ := wire.AppendBody(nil, err)
	frame := wire.AppendControl(nil, wire.OpErr, 0, body)
	c.growGrantLocked(len(frame), 0)
	c.out.Append(frame)
	c.pending += len(frame)
	c.state = stateDraining
	c.sock.SetReadDeadline(deadlineNow()) // stop the reader: nothing it reads matters now
	c.wakeWaitersLocked()
	c.wake()
}

// drained reports whether a closing connection has nothing left to write.
func (c *conn) drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateOpen && c.out.Len() == 0
}

// tryFlush writes the connection's pending output from the calling router
// if it can do so at once, and wakes the writer goroutine otherwise.
func (c *conn) tryFlush() {
	if !c.send.TryFlush() {
		c.wake()
	}
}

// takeBatch hands the Sender the oldest pending output.
func (c *conn) takeBatch(batch *wire.Outbox, descOK bool) (took, empty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.TakeInto(batch, descOK, wire.BatchMax)
}

// batchSent accounts for a written batch: it frees its room, and with it
// publishers waiting for room, lagging status, and gap notices waiting
// for room to be sent.
func (c *conn) batchSent(n, nfds int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return // abort has released everything, this batch included
	}
	c.pending -= n
	c.pendingFDs -= nfds
	c.written += int64(n)
	c.bytesOut += uint64(n)
	c.srv.stats.bytesOut.Add(uint64(n)) // once per written batch
	if c.written >= c.ctrlEnd {
		c.ctrlBytes = 0
	}
	c.shrinkGrantLocked()
	if c.pending == 0 {
		c.strikes = 0 // drained: whatever it failed before, it keeps up now
	}
	if !c.behindLocked() && (!c.lagging || c.caughtUpLocked()) {
		c.lagging = false
		c.flushGapsLocked()
	}
	c.setFullLocked() // below lagMark, a laggard takes messages again
	c.wakeWaitersLocked()
}
