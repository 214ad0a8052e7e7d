package clientlib

import "github.com/busd/busd/bus/wire"

// queueLocked appends an encoded frame and wakes the writer if it was idle.
func (c *Conn) queueLocked(frame []byte) {
	if len(c.out.Buf) == 0 {
		c.wake()
	}
	c.out.Buf = append(c.out.Buf, frame...)
	c.pending += len(frame)
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
// the connection's error if it ends.
func (c *Conn) waitSpaceLocked(nfds int) error {
	for c.err == nil && (c.pending >= c.opts.maxPending || nfds > 0 && c.fds+nfds > c.opts.maxFDs && c.fds > 0) {
		c.space.Wait()
	}
	return c.err
}

// writeLoop writes what publishers leave to it, until the connection ends.
// Latency-sensitive sends (Respond) write a small batch themselves instead
// of waking it; see wire.Sender for why.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	for {
		quitting := false
		select {
		case <-c.kick:
		case <-c.quit:
			quitting = true
		}
		if err := c.send.Flush(); err != nil {
			go c.shutdown(err, false)
			return
		}
		if quitting {
			return
		}
	}
}

// takeBatch hands the pending output to the Sender. Publishers may fill the
// emptied box while the batch is written: the limits count what waits, not
// what is being written.
func (c *Conn) takeBatch(batch *wire.Outbox, descOK bool) (took, empty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if took, empty = c.out.TakeInto(batch, descOK); took {
		c.pending, c.fds = 0, 0
		c.space.Broadcast()
	}
	return took, empty
}
