package unixsock

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Read reads up to len(p) bytes with recvmsg(2). Descriptors that arrive with
// the bytes are installed close-on-exec and appended to the Conn's FIFO, to
// be taken with [Conn.TakeFDs] once the frame that announced them has been
// parsed; the bytes returned need not start at that frame.
//
// At the end of the stream Read returns 0, io.EOF (unwrapped, as bufio and
// io.ReadFull expect). If the kernel truncated the descriptors of a read, or
// the read carried ancillary data other than SCM_RIGHTS, every descriptor of
// that read is closed (or given to the closer, see [Conn.SetFDCloser]) and
// Read returns the bytes it got together with an error wrapping
// [ErrFDsTruncated] (and [ErrFDBudget] when an [FDBudget] had granted the
// read less than the connection's limit) or [ErrBadControlMessage]; every
// later Read returns the same error, because the FIFO no longer matches the
// frames.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	n, err := c.readLocked(p)
	drop := c.rdrop
	c.rdrop = nil
	c.rmu.Unlock()
	if drop != nil {
		c.disposeFDs(drop)
	}
	return n, err
}

func (c *Conn) readLocked(p []byte) (int, error) {
	if !c.readStarted.Load() {
		c.readStarted.Store(true)
	}
	if c.rsticky != nil {
		return 0, c.rsticky
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.riov.Base = &p[0]
	c.riov.SetLen(len(p))
	c.rmsg.Iov = &c.riov
	c.rmsg.SetIovlen(1)
	err := c.rc.Read(c.readFn)
	c.riov.Base = nil // do not keep the caller's buffer alive
	if err != nil {
		return 0, wrap("read", c.path, err)
	}
	if c.rerrno != 0 {
		return 0, wrap("read", c.path, os.NewSyscallError("recvmsg", c.rerrno))
	}
	n := c.rn
	if c.rmsg.Controllen > 0 || c.rmsg.Flags&unix.MSG_CTRUNC != 0 {
		if err := c.queueControl(); err != nil {
			c.rsticky = wrap("read", c.path, err)
			return n, c.rsticky
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// doRead is the poller callback for Read; it reports false to wait for the
// socket to become readable. Each attempt has its own reservation: the
// control buffer offers the kernel room for exactly the descriptors the
// budget granted (none at all for 0, so that any descriptor sent sets
// MSG_CTRUNC), and what the attempt did not install is given back at once,
// here when it installed nothing, else by queueControl once it has counted.
func (c *Conn) doRead(fd uintptr) bool {
	c.reserveFDsLocked()
	// The kernel rewrites msg_controllen and msg_flags on every call.
	if c.rgrant > 0 {
		c.rmsg.Control = &c.oob[0]
		c.rmsg.SetControllen(unix.CmsgLen(4 * c.rgrant))
	} else {
		c.rmsg.Control = nil
		c.rmsg.SetControllen(0)
	}
	c.rmsg.Flags = 0
	n, e := recvmsg(fd, &c.rmsg)
	// A failed call leaves msg_controllen as it was passed in, and
	// installs nothing.
	if e != 0 || c.rmsg.Controllen == 0 {
		c.rmsg.SetControllen(0)
		c.settleFDsLocked(0)
	}
	if e == unix.EAGAIN {
		return false
	}
	if e != 0 {
		n = 0
	}
	c.rn, c.rerrno = n, e
	return true
}

// queueControl moves the descriptors of the last read into the FIFO. On
// MSG_CTRUNC or anything but well-formed SCM_RIGHTS it gives up every
// descriptor of that read instead (leaving them in rdrop for Read to dispose
// of once it has let go of rmu), so none leaks and none is taken by the
// wrong frame. It also settles the read's reservation: the descriptors it
// counted stay charged, the rest is released.
func (c *Conn) queueControl() error {
	grant := c.rgrant
	var b []byte
	if c.oob != nil {
		b = c.oob[:c.rmsg.Controllen]
	}
	var bad error
	if c.rmsg.Flags&unix.MSG_CTRUNC != 0 {
		bad = ErrFDsTruncated
	}
	c.fdMu.Lock()
	mark := len(c.fds)
	bad = c.appendRightsLocked(b, bad)
	got := len(c.fds) - mark
	closed := c.closed
	if (bad != nil || closed) && got > 0 {
		// A copy: the FIFO's array stays the FIFO's, the copy is the
		// closer's. Only failed reads pay for it.
		c.rdrop = append([]int(nil), c.fds[mark:]...)
		c.fds = c.fds[:mark]
	}
	c.fdMu.Unlock()
	c.settleFDsLocked(got)
	if bad == ErrFDsTruncated && grant < c.maxFDs {
		bad = c.budgetTruncation(grant)
	}
	if bad == nil && closed {
		bad = net.ErrClosed
	}
	return bad
}

// appendRightsLocked appends the descriptors of the control messages in b
// to the FIFO, including those of messages it reports as bad, so that the
// caller can give them up, and returns bad, the error the read already has,
// or the first it finds. It handles several SCM_RIGHTS messages although
// Linux stops a stream read after the first buffer that carries
// descriptors, so there is never more than one.
func (c *Conn) appendRightsLocked(b []byte, bad error) error {
	for len(b) > 0 {
		hdr, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			// Whatever the kernel wrote past here cannot be parsed, so
			// any descriptors in it cannot be closed; it never does this.
			return fmt.Errorf("%w: %w", ErrBadControlMessage, err)
		}
		b = rest
		if hdr.Level != unix.SOL_SOCKET || (hdr.Type != unix.SCM_RIGHTS && hdr.Type != unix.SCM_PIDFD) {
			bad = fmt.Errorf("%w: level %d type %d", ErrBadControlMessage, hdr.Level, hdr.Type)
			continue
		}
		for ; len(data) >= 4; data = data[4:] {
			c.fds = append(c.fds, int(int32(binary.NativeEndian.Uint32(data))))
		}
		if hdr.Type != unix.SCM_RIGHTS || len(data) != 0 {
			// SCM_PIDFD also installs a descriptor: queue it only to close it.
			if bad == nil {
				bad = fmt.Errorf("%w: level %d type %d, %d stray bytes", ErrBadControlMessage, hdr.Level, hdr.Type, len(data))
			}
		}
	}
	return bad
}

// TakeFDs removes the n oldest received descriptors from the FIFO and returns
// them in arrival order; the caller owns them from then on, and with them
// their charge to the Conn's [FDBudget], if it has one: the caller calls
// ReleaseFDs when it closes or passes them on. It fails with an error
// wrapping [ErrMissingFDs], and takes nothing, when fewer than n are queued,
// which means the peer announced descriptors it did not send. Call it from
// the goroutine that reads, after parsing the frame that announced them.
func (c *Conn) TakeFDs(n int) ([]int, error) {
	if n < 0 {
		return nil, wrap("take-fds", c.path, fmt.Errorf("negative count %d: %w", n, syscall.EINVAL))
	}
	if n == 0 {
		return nil, nil
	}
	c.fdMu.Lock()
	defer c.fdMu.Unlock()
	if c.closed {
		return nil, wrap("take-fds", c.path, net.ErrClosed)
	}
	if len(c.fds) < n {
		return nil, wrap("take-fds", c.path, fmt.Errorf("%w: want %d, have %d", ErrMissingFDs, n, len(c.fds)))
	}
	out := make([]int, n)
	copy(out, c.fds)
	c.fds = c.fds[:copy(c.fds, c.fds[n:])]
	return out, nil
}

// QueuedFDs returns how many received descriptors are waiting to be taken.
func (c *Conn) QueuedFDs() int {
	c.fdMu.Lock()
	defer c.fdMu.Unlock()
	return len(c.fds)
}
