package bus

import (
	"time"
)

// Flow control. A publisher can produce faster than a subscriber consumes;
// without a brake the broker would buffer the difference until the
// subscriber hit MaxPending and was cut off. So when a read batch leaves a
// receiver with more than stallMark bytes (or a quarter of MaxPendingFDs
// descriptors) pending, the publisher's reader
// waits, before it reads more, until that receiver's writer has caught up,
// but never longer than stallWait per batch. A fast subscriber thus paces
// its publishers; a stuck one only slows them (to a batch per stallWait)
// until the slow-consumer policy removes it, and other connections' readers
// are never held.
const (
	stallMark  = 1 << 20
	stallWait  = 5 * time.Millisecond
	stuckAfter = 100 * time.Millisecond
)

// waitForStalled waits for the receivers in c.stalls, at most stallWait in
// all, and clears the list. A receiver whose writer has not finished a batch
// for stuckAfter is not slow but stuck (its peer stopped reading): waiting
// for it would only slow everyone it shares a publisher with, so it is left
// to the slow-consumer policy. (A batch of descriptor-carrying messages can
// take several milliseconds to write to a live reader, so stuckAfter is
// well above stallWait: with stallWait it cut live subscribers off.)
func (c *conn) waitForStalled() {
	deadline := time.NewTimer(stallWait)
	defer deadline.Stop()
	expired := false
	now := time.Now().UnixNano()
	for i, r := range c.stalls {
		if now-r.lastWrite.Load() > int64(stuckAfter) {
			c.stalls[i] = nil
			continue
		}
		if ch := r.caughtUpChan(); ch != nil && !expired {
			select {
			case <-ch:
			case <-r.quit:
			case <-deadline.C:
				expired = true
			}
		}
		c.stalls[i] = nil
	}
	c.stalls = c.stalls[:0]
}

// caughtUpChan returns a channel closed once the connection's pending output
// falls to stallMark, or nil if it already has.
func (c *conn) caughtUpChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.behindLocked() || c.state != stateOpen {
		return nil
	}
	if c.caughtUp == nil {
		c.caughtUp = make(chan struct{})
	}
	return c.caughtUp
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
