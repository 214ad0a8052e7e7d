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

// writeLoop owns the socket's write side. It swaps the pending output out
// under the lock and writes it without, so publishers never wait on the
// socket unless the pending limit is reached.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	var spare wire.Outbox
	var fds []int
	quitting := false
	for {
		if !quitting {
			select {
			case <-c.kick:
			case <-c.quit:
				quitting = true
			}
		}
		c.mu.Lock()
		if len(c.out.Buf) == 0 {
			c.mu.Unlock()
			if quitting {
				return
			}
			continue
		}
		// Publishers may fill the emptied box while this one is written:
		// the limits count what waits, not what is being written.
		c.out, spare = spare, c.out
		c.pending, c.fds = 0, 0
		c.space.Broadcast()
		c.mu.Unlock()

		var err error
		fds, err = spare.WriteTo(c.sock, fds)
		spare.Reset(2 * c.opts.maxPending) // a full box plus the message that overfilled it
		if err != nil {
			go c.shutdown(err, false)
			return
		}
	}
}
