package bus

import (
	"time"
)

// Pacing. A publisher can produce faster than a subscriber consumes.
// Without a brake the broker would queue the difference until the
// subscriber's queue was full and messages were lost; with a brake that
// never lets go, one slow or stopped subscriber would hold up its
// publishers, and through them everyone else. So:
//
//   - When a read batch leaves a receiver with more than paceMark bytes
//     queued (or a quarter of MaxPendingFDs descriptors), the publisher's
//     reader, before it reads on, waits for the receiver's writer to bring
//     it back down: a fast subscriber paces its publishers.
//   - A message a receiver has no room for makes the publisher wait for
//     room before its policy applies.
//   - Both waits come out of one budget, StallBudget per read batch (a
//     large frame counts as a batch per MiB). When it runs out, the
//     receivers still waited for are lagging, unless they took drainMark
//     meanwhile: no publisher waits for them again until they have caught
//     up by themselves (fallen to a quarter of paceMark), and until then
//     they take nothing while they hold more than lagMark: what they miss
//     is lost to them (or closes them, with policy "disconnect"). A
//     stopped or slow subscriber thus costs each publisher lagStrikes
//     budgets, once, however long it stays that way, and the broker holds
//     at most lagMark for it.
//
// Nothing here guesses from time whether a receiver is alive: a receiver
// that accepts no bytes at all for WriteTimeout is closed by its own
// writer (writer.go).
const paceMark = 1 << 20

// lagMark is what a lagging receiver may hold: it takes no message while
// it holds more. Twice the pace mark: a receiver that is only descheduled
// for a while (on a busy machine, for longer than the stall budget) has
// that much more room before it loses anything, and one that has stopped
// costs the broker little more than the pace mark (measured: each MiB of
// queue a stopped subscriber fills costs its publishers about 3% of a
// 300,000-message run in page faults on the test machine).
const lagMark = 2 * paceMark

// lagFDs is the pace mark for descriptors: a connection holding more makes
// its publishers wait, as one holding more than paceMark bytes does.
// laggingMaxFDs is what a lagging connection may hold in descriptors and
// still take messages that carry some: twice lagFDs, as lagMark is twice
// paceMark. INFO announces both, with the byte marks.
func lagFDs(cfg *Config) int        { return cfg.MaxPendingFDs / 4 }
func laggingMaxFDs(cfg *Config) int { return cfg.MaxPendingFDs / 2 }

// caughtUpLocked reports whether a lagging connection has caught up
// enough to be waited for again: down to a quarter of the pace mark. A
// slow subscriber that keeps falling behind then costs its publishers a
// wait each time it has read all but that quarter of what it held, not
// every time it dips below the mark.
func (c *conn) caughtUpLocked() bool {
	return c.pending <= paceMark/4 && c.pendingFDs <= lagFDs(&c.srv.cfg)/4
}

// behindLocked reports whether the connection has more queued than
// publishers add to without pause.
func (c *conn) behindLocked() bool {
	return c.pending > paceMark || c.pendingFDs > lagFDs(&c.srv.cfg)
}

// waitForRoom waits, within the publisher's stall budget, until receiver r
// has room for m, unless r is lagging. If the budget runs out first, r is
// lagging from then on.
func (c *conn) waitForRoom(r *conn, m *outMsg) {
	c.stallLeft -= c.waitUntil(r, c.stallLeft, func() bool { return r.roomLocked(m.size, m.nfds) })
}

// waitForStalled waits for the receivers this batch left behind to catch
// up, within what is left of the batch's stall budget, and clears the
// list.
func (c *conn) waitForStalled() {
	for i, r := range c.stalls {
		c.stallLeft -= c.waitUntil(r, c.stallLeft, func() bool { return !r.behindLocked() })
		c.stalls[i] = nil
	}
	c.stalls = c.stalls[:0]
}

// waitUntil waits, at most budget, until cond (run under r.mu) holds for
// receiver r, and returns how long it waited. A receiver that is lagging,
// or closing, is not waited for. One for which cond still does not hold
// when the budget runs out becomes lagging, unless it took at least
// drainMark bytes meanwhile: a receiver that reads fast but in steps (the
// kernel wakes a Unix socket's writer only once its peer has read three
// quarters of the buffer, and a busy machine deschedules it) is paced, not
// given up on.
func (c *conn) waitUntil(r *conn, budget time.Duration, cond func() bool) time.Duration {
	var start time.Time
	var timer *time.Timer
	var took drained
	r.mu.Lock()
	defer func() {
		r.mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		switch {
		case cond():
			if timer != nil { // it caught up while waited for: not a laggard
				r.strikes = 0
			}
			return since(start)
		case r.lagging || r.state != stateOpen:
			return since(start)
		case r.strikes >= lagStrikes: // a known laggard behind again: not waited for
			r.lagging = true
			c.srv.stats.lagging.Add(1)
			return since(start)
		case budget <= 0:
			if timer != nil && !took.atLeast(r, drainMark) {
				if r.strikes++; r.strikes >= lagStrikes {
					r.lagging = true
					c.srv.stats.lagging.Add(1)
				}
			}
			return since(start)
		}
		if timer == nil {
			start = time.Now()
			timer = time.NewTimer(budget)
			took.start(r)
			c.srv.stats.stalls.Add(1)
		}
		ch := r.progressLocked()
		r.mu.Unlock()
		select {
		case <-ch:
		case <-c.quit: // the publisher is going away: nothing to wait for
			r.mu.Lock()
			return since(start)
		case <-timer.C:
			budget = 0
		}
		r.mu.Lock()
	}
}

// drainMark is what a receiver must take during a publisher's stall budget
// not to count a strike when it is still behind at the end of it.
const drainMark = paceMark / 4

// lagStrikes is how many waits a receiver must fail, with none that it
// caught up in between, before it is lagging: a receiver descheduled for
// one budget (the test machine's scheduler pauses a process for 8 ms now
// and then) is waited for once more, not given up on, and a stopped one
// costs its publishers two budgets, once. The count survives the receiver
// catching up by itself, until it has written everything it held: a slow
// subscriber that keeps falling behind is not waited for again each time.
const lagStrikes = 2

// drained measures what a receiver took from the broker during a wait:
// what its writer wrote, and how much of what sat unread in its socket
// when the wait began it has read since.
type drained struct {
	written int64
	unread  int
}

// start records where r stands; r.mu is held.
func (d *drained) start(r *conn) {
	d.written = r.written
	d.unread, _ = r.sock.Unread()
}

// atLeast reports whether r has taken n bytes since start; r.mu is held.
func (d *drained) atLeast(r *conn, n int) bool {
	unread, err := r.sock.Unread()
	if err != nil {
		return false
	}
	return r.written-d.written+int64(d.unread-unread) >= int64(n)
}

// since is time.Since, and 0 for a wait that never started.
func since(start time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}
