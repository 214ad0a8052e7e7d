package unixsock

import "golang.org/x/sys/unix"

// SetFDCloser makes the Conn hand every descriptor it would close itself
// (unclaimed ones at Close, those of a truncated or malformed control
// message, those that arrive after Close) to close instead of closing them
// inline. close(2) can block: on a passed TCP socket with SO_LINGER set and
// a full send queue it waits for the linger time, which must not stall the
// goroutine that reads or closes. A typical close queues the descriptors
// for a goroutine of its own.
//
// close owns the descriptors it is given, and the slice holding them, and
// with them their charge to the Conn's [FDBudget]: the Conn does not call
// ReleaseFDs for them, so close (or whoever it queues them for) must, once
// they are closed. It may be called from Close, on the caller's goroutine,
// or from the goroutine that reads, also after Close has returned; it is
// never called with a lock of the Conn held, so it may use the Conn, but
// when a Read gives up descriptors it runs before that Read returns, so it
// must not wait for the Read to finish. Without a closer (nil, the default)
// the Conn closes the descriptors inline and then releases their charge.
//
// SetFDCloser may be called at any time; it applies to the descriptors the
// Conn gives up from then on.
func (c *Conn) SetFDCloser(close func(fds []int)) {
	c.fdMu.Lock()
	c.closer = close
	c.fdMu.Unlock()
}

// disposeFDs closes fds, received descriptors the Conn gives up, or hands
// them to the closer with their budget charge. It must be called without
// fdMu or rmu held, since the closer may be slow or use the Conn.
func (c *Conn) disposeFDs(fds []int) {
	c.fdMu.Lock()
	closer, budget := c.closer, c.budget
	c.fdMu.Unlock()
	if closer != nil {
		closer(fds)
		return
	}
	closeFDs(fds)
	if budget != nil {
		budget.ReleaseFDs(len(fds))
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
