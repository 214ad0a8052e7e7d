package clientlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/busd/busd/bus/wire"
)

// queueLocked appends an encoded frame and wakes the writer if it was idle.
func (c *Conn) queueLocked(frame []byte) {
	if c.out.Len() == 0 {
		c.wake()
	}
	c.out.Append(frame)
	c.seq++
}

// wake tells the writer there is output; a wake-up already pending covers it.
func (c *Conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// waitSpaceLocked blocks while the output waiting for the writer is at its
// limit, so a publisher faster than the socket is slowed to its pace instead
// of growing memory (or, with files, descriptors) without bound. It returns
// the connection's error if it ends, and ctx's if ctx ends first; ctx is
// looked at only if there is a wait.
//
// While the connection is reconnecting there is no writer to wait for: it
// returns nil at once, and the caller checks the reconnect buffer's bound.
func (c *Conn) waitSpaceLocked(ctx context.Context, nfds int) error {
	if c.err != nil || c.status != Connected || !c.fullLocked(nfds) {
		return c.err
	}
	if ctx.Done() != nil {
		// A sync.Cond cannot be selected on: ctx's end wakes the waiters
		// instead, and each looks at its own ctx. stop does not wait for
		// the function, which needs c.mu, held here.
		stop := context.AfterFunc(ctx, func() {
			c.mu.Lock()
			c.space.Broadcast()
			c.mu.Unlock()
		})
		defer stop()
	}
	for c.err == nil && c.status == Connected && c.fullLocked(nfds) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.space.Wait()
	}
	return c.err
}

// fullLocked reports whether a message with nfds descriptors must wait for
// the writer. One message always goes when nothing waits, however large.
// A payload memfd waiting counts at its size: a publisher of large
// payloads faster than the broker reads would otherwise pile up memfds,
// up to the descriptor bound, each as large as its payload.
func (c *Conn) fullLocked(nfds int) bool {
	return c.out.Len()+c.fdPending >= c.opts.maxPending || nfds > 0 && c.fds+nfds > c.opts.maxFDs && c.fds > 0
}

// writeLoop writes what publishers leave to it, until session s ends.
// Latency-sensitive sends (Respond) write a small batch themselves instead
// of waking it; see wire.Sender for why.
func (c *Conn) writeLoop(s *session) {
	defer close(s.writerDone)
	for {
		quitting := false
		select {
		case <-c.kick:
		case <-s.down:
			quitting = true
		case <-c.quit:
			quitting = true
		}
		if err := c.flushOut(s); err != nil {
			go c.sessionEnded(s, err)
			return
		}
		if quitting {
			return
		}
	}
}

// flushOut writes everything pending. A broker that accepts no byte for
// the write timeout while output waits has stopped reading this connection:
// it ends with ErrWriteTimeout rather than leave every publisher, and
// Flush, waiting for ever. A write that times out after the broker took
// some bytes is not a stall, and the write goes on under a new deadline.
func (c *Conn) flushOut(s *session) error {
	for {
		c.armWriteDeadline(s)
		err := s.send.Flush()
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		c.mu.Lock()
		closing := !c.closeBy.IsZero()
		c.mu.Unlock()
		if closing {
			return err // Close's time to flush is up
		}
		if !s.movedSinceArmed() {
			return fmt.Errorf("%w: it accepted no byte for %v with output waiting", ErrWriteTimeout, c.opts.writeTimeout)
		}
		s.armedAt = time.Time{} // a new deadline, and on
	}
}

// movedSinceArmed reports whether the broker took any bytes since the write
// deadline was set: whether a write moved data, or the broker read some of
// what was written before. The kernel wakes a writer waiting on a Unix
// socket only once the reader has emptied most of its buffer, so a broker
// reading slowly can let a write wait longer than the timeout without a
// byte moving; reading is progress all the same.
func (s *session) movedSinceArmed() bool {
	if s.sock.LastWrite() > s.armedAt.UnixNano() {
		return true
	}
	unread, err := s.sock.Unread()
	return err == nil && unread < s.armedUnread
}

// armWriteDeadline sets the write deadline a write timeout ahead, unless
// it was set less than a quarter of that ago: a busy writer does not move
// its deadline for every batch, and a deadline is always at least three
// quarters of the timeout away when a write starts. A deadline long past is
// harmless while the writer is idle; a TryFlush that meets it leaves its
// batch to the writer, which moves the deadline first. Close sets its own
// deadline, which this leaves alone.
func (c *Conn) armWriteDeadline(s *session) {
	now := time.Now()
	if now.Sub(s.armedAt) <= c.opts.writeTimeout/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closeBy.IsZero() {
		return
	}
	s.sock.SetWriteDeadline(now.Add(c.opts.writeTimeout))
	s.armedAt = now
	s.armedUnread = -1 // unknown: only a write shows progress
	if n, err := s.sock.Unread(); err == nil {
		s.armedUnread = n
	}
}

// takeBatch hands the oldest pending output, up to wire.BatchMax, to the
// Sender of session s: the SUBs restoring subscriptions first, then the
// rest. Publishers may fill the box again while the batch is written: the
// limits count what waits, not what is being written. A lost session takes
// nothing: what is queued from then on is for the next one.
func (c *Conn) takeBatch(s *session, batch *wire.Outbox, descOK bool) (took, empty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.lost || c.sess != s {
		batch.Reset()
		return false, true
	}
	if c.pre.Len() > 0 {
		return c.pre.TakeInto(batch, descOK, wire.BatchMax)
	}
	if took, empty = c.out.TakeInto(batch, descOK, wire.BatchMax); took {
		c.fds = c.out.FDs() // what the batch took no longer waits; the rest still does
		c.payloadsTakenLocked()
		c.space.Broadcast()
	}
	return took, empty
}
