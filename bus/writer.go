package bus

import (
	"errors"
	"syscall"
	"time"

	"github.com/busd/busd/bus/wire"
)

// writeLoop writes whatever routers leave to it, until the connection ends.
// Routers write small batches to idle connections themselves (tryFlush); see
// wire.Sender for why.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer func() {
		c.send.Close() // release the descriptors of an unfinished batch
		// and hand them to the closer: abort handed it everything else,
		// and its worker may have taken that already.
		c.srv.closer.flush()
	}()
	for {
		select {
		case <-c.kick:
		case <-c.quit:
		}
		finished := c.flush()
		c.srv.closer.flush() // descriptors the written batches released
		if finished {
			c.abort() // failed, drained, or closed under us
			return
		}
		c.disarmWriteDeadline()
	}
}

// flush writes everything pending and reports whether the connection is
// finished: closing and drained, or failed. A peer that accepts no byte
// for WriteTimeout while output waits is a slow consumer: the backlog is
// dropped and an ERR queued in its place, which the peer gets if it reads
// within another WriteTimeout.
func (c *conn) flush() (finished bool) {
	for {
		c.armWriteDeadline()
		done, err := c.send.FlushThen(c.drained)
		switch {
		case err == nil:
			return done
		case !isTimeout(err):
			if errors.Is(err, syscall.ETOOMANYREFS) && c.srv.noteLines.take(time.Now(), c.srv.log) {
				// Not this connection's doing: see docs/SECURITY.md,
				// "Descriptors in flight".
				c.log.Warn("closing: the kernel refused to pass it descriptors (ETOOMANYREFS): busd's uid has as many descriptors sent and not yet read by receivers as its RLIMIT_NOFILE; raise busd's descriptor limit, or give it CAP_SYS_RESOURCE", "err", err)
			}
			return true
		case c.readSinceArmed():
			c.armedAt = time.Time{} // it read some: a new deadline, and on
			continue
		}
		c.mu.Lock()
		open := c.state == stateOpen
		if open {
			c.srv.stats.slowConsumers.Add(1)
			c.log.Info("closing a slow consumer", "reason", "no byte accepted", "for", c.srv.cfg.WriteTimeout)
			c.closeLocked(wire.Errorf(wire.CodeSlowConsumer,
				"the connection accepted no byte for %v with %d bytes waiting for it", c.srv.cfg.WriteTimeout, c.pending))
		}
		c.mu.Unlock()
		if !open {
			return true // closing, and not reading its last frames either
		}
		c.armedAt = time.Time{}
	}
}

// armWriteDeadline sets the write deadline WriteTimeout ahead, unless it
// was set less than a quarter of that ago: a busy connection's writer does
// not reset its timer on every batch, and a deadline is always at least
// three quarters of WriteTimeout away when a write starts.
func (c *conn) armWriteDeadline() {
	now := time.Now()
	w := c.srv.cfg.WriteTimeout
	if now.Sub(c.armedAt) > w/4 {
		c.sock.SetWriteDeadline(now.Add(w))
		c.armedAt = now
		c.armedUnread, _ = c.sock.Unread()
	}
}

// disarmWriteDeadline clears the deadline once the writer has written
// everything: an idle connection's deadline would expire, and the next
// small batch a router tries to write at once (tryFlush) would fail on it
// and go the slow way, through this goroutine.
func (c *conn) disarmWriteDeadline() {
	if !c.armedAt.IsZero() {
		c.sock.SetWriteDeadline(noDeadline)
		c.armedAt = time.Time{}
	}
}

// readSinceArmed reports whether the peer has read anything since the
// write deadline was set: a write moved data, or the socket's unread bytes
// fell. The second matters: the kernel wakes a writer blocked on a Unix
// socket only once the peer has read three quarters of the buffer, so a
// peer that reads slowly in small steps moves no write for a long time.
func (c *conn) readSinceArmed() bool {
	if c.sock.LastWrite() >= c.armedAt.UnixNano() {
		return true
	}
	unread, err := c.sock.Unread()
	return err == nil && unread < c.armedUnread
}
