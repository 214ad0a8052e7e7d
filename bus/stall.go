package bus

import (
	"time"
)

// Flow control. A publisher can produce faster than a subscriber consumes;
// without a brake the broker would buffer the difference until the
// subscriber hit MaxPending and was cut off. So when a read batch leaves a
// receiver with more than stallMark bytes (or a quarter of MaxPendingFDs
// descriptors) pending, the publisher's reader waits, before it reads more,
// until that receiver's writer has caught up, but not longer than stallWait
// per batch: a fast subscriber paces its publishers, and a slow one only
// slows them a little. A receiver more than half way to MaxPending is
// waited for as long as it keeps reading, however slowly, so that a burst
// of large messages never cuts off a subscriber that is alive; the
// publisher's reader is held meanwhile (its other traffic too): that is the
// back-pressure. One that has stopped reading is not waited for at all
// (see stuck), and the slow-consumer policy removes it; other connections'
// readers are never held.
const (
	stallMark  = 1 << 20
	stallWait  = 5 * time.Millisecond
	stuckAfter = 100 * time.Millisecond
)

// waitForStalled waits for the receivers in c.stalls, as flow control says,
// and clears the list.
func (c *conn) waitForStalled() {
	deadline := time.NewTimer(stallWait)
	defer deadline.Stop()
	defer func() { // on every return: the list is this batch's only
		clear(c.stalls)
		c.stalls = c.stalls[:0]
	}()
	expired := false
	for _, r := range c.stalls {
		for !r.stuck() {
			ch, danger := r.caughtUpChan()
			if ch == nil || expired && !danger {
				break
			}
			select {
			case <-ch:
			case <-r.quit:
			case <-c.quit:
				return
			case <-deadline.C:
				expired = true
				deadline.Reset(stallWait) // in the danger zone: look again
			}
		}
	}
}

// stuck reports whether the connection has had output pending for
// stuckAfter without its peer reading any: its peer has stopped. Progress
// is a write that moved data, or, while the writer waits for room (the
// kernel wakes it only once the peer has read a quarter of the buffer),
// the socket's unread bytes falling between two looks. (Judged by finished
// batches, a large message, or descriptors, took long enough to write that
// live subscribers were cut off.)
func (c *conn) stuck() bool {
	now := time.Now().UnixNano()
	if n, err := c.sock.Unread(); err == nil {
		if prev := c.unread.Swap(int64(n)); int64(n) < prev || n == 0 {
			c.readAt.Store(now)
		}
	}
	progress := max(c.sock.LastWrite(), c.busySince.Load(), c.readAt.Load())
	return now-progress > int64(stuckAfter)
}

// caughtUpChan returns a channel closed once the connection's pending output
// falls to stallMark, or nil if it already has; and whether the pending
// output is in the danger zone, over half of MaxPending.
func (c *conn) caughtUpChan() (ch chan struct{}, danger bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.behindLocked() || c.state != stateOpen {
		return nil, false
	}
	if c.caughtUp == nil {
		c.caughtUp = make(chan struct{})
	}
	return c.caughtUp, c.pending > c.srv.cfg.MaxPending/2 || c.pendingFDs > c.srv.cfg.MaxPendingFDs/2
}

// caughtUpLocked releases the publishers waiting for this connection once
// its writer has brought pending output down to stallMark.
func (c *conn) caughtUpLocked() {
	if c.caughtUp != nil && !c.behindLocked() {
		close(c.caughtUp)
		c.caughtUp = nil
	}
}

// behindLocked reports whether the connection has more output pending than
// flow control lets publishers add to without pause.
func (c *conn) behindLocked() bool {
	return c.pending > stallMark || c.pendingFDs > c.srv.cfg.MaxPendingFDs/4
}
