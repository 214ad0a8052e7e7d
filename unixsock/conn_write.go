package unixsock

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Write writes p, with as many write(2) calls as the socket needs.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wone[0] = p
	n, err := c.writeLocked(c.wone[:], nil)
	c.wone[0] = nil
	c.wmu.Unlock()
	return int(n), wrap("write", c.path, err)
}

// WriteWithFDs writes p and attaches fds to its first byte. The descriptors
// are sent exactly once: if the socket takes only part of p, the rest follows
// without them. The kernel duplicates the descriptors; the caller keeps
// ownership of fds and may close them when WriteWithFDs returns. With fds, p
// must not be empty and fds must number at most [MaxFDsPerMessage]; the peer
// must also accept that many in one read (see [WithMaxRecvFDs]).
//
// If it returns an error after writing n > 0 bytes, the descriptors were
// sent with the first of them.
func (c *Conn) WriteWithFDs(p []byte, fds []int) (int, error) {
	c.wmu.Lock()
	c.wone[0] = p
	n, err := c.writeLocked(c.wone[:], fds)
	c.wone[0] = nil
	c.wmu.Unlock()
	return int(n), wrap("write", c.path, err)
}

// WriteBuffers writes the concatenation of bufs with sendmsg(2) and an iovec
// per buffer, so many queued frames go out in one system call, and attaches
// fds (which may be nil) to the first byte, as [Conn.WriteWithFDs] does. The
// descriptors may belong to any frames in bufs: the receiver queues them in
// order and each frame takes its own. Partial writes continue from where the
// kernel stopped, across buffer boundaries, without the descriptors. bufs and
// its elements are not modified. It returns the number of bytes written.
func (c *Conn) WriteBuffers(bufs [][]byte, fds []int) (int64, error) {
	c.wmu.Lock()
	n, err := c.writeLocked(bufs, fds)
	c.wmu.Unlock()
	return n, wrap("write", c.path, err)
}

// TryWrite writes as much of p as the socket takes without waiting and
// returns how much that was: possibly 0, with a nil error, when the socket
// buffer is full. It lets a goroutine that holds a connection's write side
// for a moment (see package bus) send a small batch itself instead of
// waking another goroutine to do it, which on a virtual machine costs tens
// of microseconds of latency. It carries no descriptors.
func (c *Conn) TryWrite(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wone[0] = p
	c.wnowait = true
	n, err := c.writeLocked(c.wone[:], nil)
	c.wnowait = false
	c.wone[0] = nil
	return int(n), wrap("write", c.path, err)
}

// TryWriteBuffers is TryWrite for the concatenation of bufs, in one
// sendmsg with an iovec per buffer: it writes as much as the socket takes
// without waiting and returns how much that was. It carries no descriptors.
func (c *Conn) TryWriteBuffers(bufs [][]byte) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wnowait = true
	n, err := c.writeLocked(bufs, nil)
	c.wnowait = false
	return n, wrap("write", c.path, err)
}

func (c *Conn) writeLocked(bufs [][]byte, fds []int) (int64, error) {
	c.wmsg.Control = nil
	c.wmsg.SetControllen(0)
	if len(fds) > 0 {
		if len(fds) > MaxFDsPerMessage {
			return 0, fmt.Errorf("%w: %d, limit %d", ErrTooManyFDs, len(fds), MaxFDsPerMessage)
		}
		total := 0
		for _, b := range bufs {
			total += len(b)
		}
		if total == 0 {
			return 0, fmt.Errorf("%d fds and no byte to carry them: %w", len(fds), syscall.EINVAL)
		}
		c.setRightsLocked(fds)
	}
	c.wbufs, c.woff, c.wn, c.werr = bufs, 0, 0, nil
	c.skipEmptyLocked()
	if len(c.wbufs) == 0 {
		return 0, nil
	}
	err := c.rc.Write(c.writeFn)
	clear(c.wiov[:cap(c.wiov)]) // do not keep the caller's buffers alive
	c.wbufs = nil
	if err == nil {
		err = c.werr
	}
	return c.wn, err
}

// LastWrite returns when a write last moved data to the peer, in Unix
// nanoseconds (0 before the first). A writer blocked on a peer that reads
// slowly still makes progress; one blocked on a peer that stopped reading
// does not, and this tells the two apart while a long write is under way.
func (c *Conn) LastWrite() int64 { return c.wrote.Load() }

// Unread returns how much of what was written to the socket its peer has
// not read yet, in the kernel's accounting (SIOCOUTQ: for a Unix socket the
// buffers' memory, payload and overhead, freed a whole buffer at a time).
// It falls as the peer reads, so with LastWrite it tells a peer that reads
// slowly, while the writer waits for room, from one that has stopped.
func (c *Conn) Unread() (int, error) {
	n, ierr := 0, error(nil)
	if err := c.rc.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); err != nil {
		return 0, wrap("ioctl SIOCOUTQ", c.path, err)
	}
	return n, wrap("ioctl SIOCOUTQ", c.path, ierr)
}

// doWrite is the poller callback for writes; it reports false to wait for
// the socket to become writable. The descriptors ride only the first sendmsg
// that succeeds: a call that fails with EAGAIN sent nothing, so they stay
// attached for the retry.
func (c *Conn) doWrite(fd uintptr) bool {
	for len(c.wbufs) > 0 {
		c.fillIovLocked()
		var n int
		var e syscall.Errno
		call := "sendmsg"
		if c.wmsg.Control == nil && len(c.wiov) == 1 {
			// One buffer and no descriptors: send(2) does the same with
			// less argument copying in the kernel.
			call = "send"
			n, e = send(fd, c.wiov[0])
		} else {
			n, e = sendmsg(fd, &c.wmsg)
		}
		if e == unix.EAGAIN {
			return c.wnowait // TryWrite: done with what the socket took
		}
		if e != 0 {
			c.werr = os.NewSyscallError(call, e)
			return true
		}
		if n <= 0 {
			c.werr = io.ErrShortWrite
			return true
		}
		c.wmsg.Control = nil
		c.wmsg.SetControllen(0)
		c.wn += int64(n)
		c.wrote.Store(time.Now().UnixNano())
		c.advanceLocked(n)
	}
	return true
}

// fillIovLocked points the msghdr at what is left of wbufs, at most
// maxIovecs buffers at a time.
func (c *Conn) fillIovLocked() {
	c.wiov = c.wiov[:0]
	off := c.woff
	for _, b := range c.wbufs {
		if len(c.wiov) == maxIovecs {
			break
		}
		if len(b) > off {
			v := unix.Iovec{Base: &b[off]}
			v.SetLen(len(b) - off)
			c.wiov = append(c.wiov, v)
		}
		off = 0
	}
	c.wmsg.Iov = &c.wiov[0]
	c.wmsg.SetIovlen(len(c.wiov))
}

// advanceLocked drops n sent bytes from the front of wbufs.
func (c *Conn) advanceLocked(n int) {
	for n > 0 && len(c.wbufs) > 0 {
		rem := len(c.wbufs[0]) - c.woff
		if n < rem {
			c.woff += n
			return
		}
		n -= rem
		c.wbufs, c.woff = c.wbufs[1:], 0
	}
	c.skipEmptyLocked()
}

func (c *Conn) skipEmptyLocked() {
	for len(c.wbufs) > 0 && len(c.wbufs[0]) == c.woff {
		c.wbufs, c.woff = c.wbufs[1:], 0
	}
}

// setRightsLocked builds one SCM_RIGHTS control message for fds in a buffer
// kept between calls (unix.UnixRights would allocate one per write).
func (c *Conn) setRightsLocked(fds []int) {
	size := unix.CmsgSpace(4 * len(fds))
	if cap(c.woob) < size {
		c.woob = make([]byte, unix.CmsgSpace(4*MaxFDsPerMessage))
	}
	b := c.woob[:size]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_SOCKET
	h.Type = unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(4 * len(fds)))
	data := b[unix.CmsgLen(0):]
	for i, fd := range fds {
		binary.NativeEndian.PutUint32(data[4*i:], uint32(fd))
	}
	c.wmsg.Control = &b[0]
	c.wmsg.SetControllen(size)
}
