package bus

import (
	"time"

	"github.com/busd/busd/bus/wire"
)

// enqueued says what queueing a message did to its receiver.
type enqueued struct {
	taken bool // false if the connection is closing or cut off, or the subscription is gone: a queue group picks another member
	wake  bool // the connection was idle: the caller must wake its writer
	stall bool // the connection is behind: the caller should let it catch up
}

// enqueueMsg appends the MSG that delivers m to subscription s.
func (c *conn) enqueueMsg(s *subscription, m *outMsg, set *fdSet) enqueued {
	pub := m.pub
	size := pub.Size() + wire.OriginLen
	nfds := int(pub.NFDs)
	cfg := &c.srv.cfg
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen || s.removed {
		return enqueued{}
	}
	if c.pending+size > cfg.MaxPending || c.pendingFDs+nfds > cfg.MaxPendingFDs {
		c.srv.stats.dropped.Add(1)
		if cfg.SlowConsumer == DropNew {
			return enqueued{taken: true}
		}
		c.drainLocked(wire.Errorf(wire.CodeSlowConsumer,
			"%d bytes and %d descriptors waiting to be written to this connection; the limits are %d and %d",
			c.pending, c.pendingFDs, cfg.MaxPending, cfg.MaxPendingFDs))
		return enqueued{}
	}
	e := enqueued{taken: true, wake: len(c.out.Buf) == 0}
	if e.wake {
		c.busySince.Store(time.Now().UnixNano())
	}
	if set != nil {
		set.ref()
		c.out.AddFDs(set.fds, set)
		c.pendingFDs += nfds
	}
	if m.encoded != nil {
		n := len(c.out.Buf)
		c.out.Buf = append(c.out.Buf, m.encoded...)
		wire.SetID(c.out.Buf[n:], s.sid)
	} else {
		c.out.Buf = wire.AppendMsg(c.out.Buf, s.sid, m.origin, pub)
	}
	c.pending += size
	e.stall = c.behindLocked()
	return e
}

// enqueueControl appends a frame of the broker's own (PONG, INFO, ERR) and
// schedules the writer.
func (c *conn) enqueueControl(frame []byte) {
	c.mu.Lock()
	wake := c.state != stateClosed && len(c.out.Buf) == 0
	if c.state != stateClosed {
		c.out.Buf = append(c.out.Buf, frame...)
		c.pending += len(frame)
	}
	c.mu.Unlock()
	if wake {
		c.wake()
	}
}

// wake tells the writer there is output; a wake-up already pending covers it.
func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// drainLocked queues err as an ERR frame and puts the connection in the
// draining state: the writer sends what is pending, then closes the socket.
// The ERR may push pending output over the limit: it is small, and it is the
// last frame.
func (c *conn) drainLocked(err *wire.Error) {
	if c.state != stateOpen {
		return
	}
	body, _ := wire.AppendBody(nil, err)
	n := len(c.out.Buf)
	c.out.Buf = wire.AppendControl(c.out.Buf, wire.OpErr, 0, body)
	c.pending += len(c.out.Buf) - n
	c.state = stateDraining
	c.sock.SetReadDeadline(time.Now()) // stop the reader: nothing it reads matters now
	c.sock.SetWriteDeadline(time.Now().Add(drainTimeout))
	c.wake()
}

// keepOutbox is the buffer capacity a connection's writer keeps between
// writes: enough for a busy subscriber's batches, which flow control keeps
// near stallMark, without regrowing them each time; a quiet connection's
// buffers never grow in the first place.
const keepOutbox = 2 * stallMark

// drainTimeout bounds how long a closing connection may take to accept its
// last frames; a peer that stopped reading does not hold the broker up.
const drainTimeout = time.Second

// writeLoop writes whatever routers leave to it, until the connection ends.
// Routers write small batches to idle connections themselves (tryFlush); see
// wire.Sender for why.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.send.Close() // release the descriptors of an unfinished batch
	for {
		select {
		case <-c.kick:
		case <-c.quit:
		}
		finished, err := c.send.FlushThen(c.drained)
		if err != nil || finished {
			c.abort() // failed, drained, or closed under us
			return
		}
	}
}

// drained reports whether a closing connection has nothing left to write.
func (c *conn) drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateOpen && len(c.out.Buf) == 0
}

// tryFlush writes the connection's pending output from the calling router
// if it can do so at once, and wakes the writer goroutine otherwise.
func (c *conn) tryFlush() {
	if !c.send.TryFlush() {
		c.wake()
	}
}

// takeBatch hands the pending output to the Sender.
func (c *conn) takeBatch(batch *wire.Outbox, descOK bool) (took, empty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.TakeInto(batch, descOK)
}

// batchSent accounts for a written batch.
func (c *conn) batchSent(n, nfds int) {
	c.mu.Lock()
	c.pending -= n
	c.pendingFDs -= nfds
	c.caughtUpLocked()
	c.mu.Unlock()
}
