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
// of large messages never cuts off a subscriber that is alive. One that
// has stopped reading is not waited for at all (see stuck), and the
// slow-consumer policy removes it; other connections' readers are never
// held.
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
	expired := false
	for i, r := range c.stalls {
		c.stalls[i] = nil
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
	c.stalls = c.stalls[:0]
}

// stuck reports whether the connection has had output pending for
// stuckAfter without its writer moving any of it: its peer has stopped
// reading. (A batch of descriptor-carrying messages, or one large message,
// can take many milliseconds to write to a live reader, so progress is
// judged by the socket's writes, not by finished batches; with finished
// batches and stallWait as the bound, live subscribers were cut off.)
func (c *conn) stuck() bool {
	progress := max(c.sock.LastWrite(), c.busySince.Load())
	return time.Now().UnixNano()-progress > int64(stuckAfter)
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
