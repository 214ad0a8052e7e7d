package unixsock

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a connected Unix stream socket whose reads collect passed file
// descriptors into a FIFO and whose writes can attach descriptors. It
// implements [net.Conn]; reads and writes go through Go's runtime poller, so
// deadlines and Close wake blocked calls.
//
// Read and Write are each serialised by a lock, so concurrent calls are safe
// as net.Conn requires, but descriptors only match frames when one goroutine
// reads and takes them (and one goroutine writes frames with descriptors), so
// use one reader and one writer.
type Conn struct {
	uc    *net.UnixConn
	rc    syscall.RawConn
	path  string // for errors; "" for socketpairs
	laddr net.Addr
	raddr net.Addr
	cred  Cred
	pidfd int // never changes; closed by Close

	// pidMu orders DupPeerPidFD against Close: a duplicate is made only
	// while pidfd is still open, never of a number Close has freed and the
	// process may since have reused for another file.
	pidMu     sync.Mutex
	pidClosed bool

	// The read side. The poller callback is bound once (readFn) and gets
	// its arguments and results through these fields, so Read allocates
	// nothing.
	rmu     sync.Mutex
	readFn  func(uintptr) bool
	rmsg    unix.Msghdr
	riov    unix.Iovec
	oob     []byte // room for maxFDs descriptors; nil when zero
	rn      int
	rerrno  syscall.Errno
	rsticky error // a read error after which the FIFO cannot be trusted

	// The read side's descriptor accounting (fdbudget.go): maxFDs never
	// changes, readStarted is atomic, the rest is under rmu.
	maxFDs      int   // the connection's limit, WithMaxRecvFDs
	rgrant      int   // descriptors the last recvmsg attempt could install
	rheld       int   // of rgrant, reserved from the budget and not yet settled
	rdrop       []int // descriptors the last read gave up, disposed of after rmu
	readStarted atomic.Bool

	// The write side, likewise.
	wmu     sync.Mutex
	writeFn func(uintptr) bool
	wrote   atomic.Int64 // unix ns of the last write that moved data
	wmsg    unix.Msghdr
	wiov    []unix.Iovec
	wone    [1][]byte
	wbufs   [][]byte // what is left to send
	wnowait bool     // TryWrite: stop at EAGAIN instead of waiting
	woff    int      // bytes of wbufs[0] already sent
	wn      int64
	werr    error
	woob    []byte

	// The descriptor FIFO, shared by the reader and Close, and what
	// accounts for and disposes of the descriptors in it.
	fdMu   sync.Mutex
	fds    []int
	closed bool
	budget FDBudget        // set before the first Read; see SetFDBudget
	closer func(fds []int) // see SetFDCloser

	closeOnce sync.Once
	closeErr  error
}

// Cred is the identity of the process at the other end of a connection, as
// the kernel recorded it when the connection was made (SO_PEERCRED). For an
// accepted connection it is the process that called connect(2); for a dialled
// one, the process that called listen(2); for a socketpair, the process that
// created it. A peer in another pid namespace may show pid 0.
type Cred struct {
	PID, UID, GID int
	// Groups are the peer's supplementary group ids (SO_PEERGROUPS),
	// recorded with the rest, in the kernel's (ascending) order; nil when
	// it has none or the kernel does not report them (before Linux 4.13).
	// Whether GID is among them depends on how the process set its
	// groups, so a check for membership of a group looks at both. The
	// slice is read once, when the Conn is made, and every Peer call
	// returns the same one: do not modify it.
	Groups []uint32
}

// newConn wraps uc, taking ownership of it. path is the socket path for
// errors and, when not empty, overrides the address the kernel reports: a
// socket published by Listen was bound under a temporary name, and
// getsockname/getpeername keep reporting that name after the rename.
func newConn(uc *net.UnixConn, path string, local bool, cfg connConfig) (*Conn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, err
	}
	if cfg.sendBuffer > 0 {
		if err := uc.SetWriteBuffer(cfg.sendBuffer); err != nil {
			uc.Close()
			return nil, wrap("setsockopt SO_SNDBUF", path, err)
		}
	}
	cred, pidfd, err := peerInfo(rc)
	if err != nil {
		uc.Close()
		return nil, err
	}
	c := &Conn{uc: uc, rc: rc, path: path, cred: cred, pidfd: pidfd}
	c.laddr, c.raddr = addrOrEmpty(uc.LocalAddr()), addrOrEmpty(uc.RemoteAddr())
	if path != "" {
		if local {
			c.laddr = &net.UnixAddr{Name: path, Net: "unix"}
		} else {
			c.raddr = &net.UnixAddr{Name: path, Net: "unix"}
		}
	}
	c.maxFDs = cfg.maxRecvFDs
	if cfg.maxRecvFDs > 0 {
		// CmsgLen, not CmsgSpace: the padding of CmsgSpace would let one
		// more descriptor than the limit through when the limit is odd.
		c.oob = make([]byte, unix.CmsgLen(4*cfg.maxRecvFDs))
	}
	c.readFn = c.doRead
	c.writeFn = c.doWrite
	return c, nil
}

// addrOrEmpty keeps LocalAddr and RemoteAddr from returning a nil pointer in
// a non-nil interface for unnamed sockets.
func addrOrEmpty(a net.Addr) net.Addr {
	if ua, ok := a.(*net.UnixAddr); ok && ua != nil {
		return ua
	}
	return &net.UnixAddr{Net: "unix"}
}

// Peer returns the credentials the kernel recorded for the peer when the
// connection was made. See [Cred] for whose they are.
func (c *Conn) Peer() Cred { return c.cred }

// PeerPidFD returns a pidfd for the peer process, or -1 when the kernel lacks
// SO_PEERPIDFD or the peer was already gone. Unlike the pid, it cannot come
// to refer to another process. The Conn owns it and closes it in Close; dup
// it to keep it longer.
func (c *Conn) PeerPidFD() int { return c.pidfd }

// DupPeerPidFD returns a close-on-exec duplicate of the peer's pidfd, which
// the caller owns, for handing to another process or keeping past Close. It
// returns [ErrNoPidFD] when the Conn has no pidfd (see [Conn.PeerPidFD]) and
// [net.ErrClosed] once Close has begun. It is safe to call concurrently
// with Close, and never blocks on it.
func (c *Conn) DupPeerPidFD() (int, error) {
	c.pidMu.Lock()
	defer c.pidMu.Unlock()
	switch {
	case c.pidClosed:
		return -1, wrap("dup pidfd", c.path, net.ErrClosed)
	case c.pidfd < 0:
		return -1, wrap("dup pidfd", c.path, ErrNoPidFD)
	}
	fd, err := unix.FcntlInt(uintptr(c.pidfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, wrap("dup pidfd", c.path, err)
	}
	return fd, nil
}

// CloseWrite shuts down the writing side: the peer reads EOF once it has
// read what was sent. Reading still works.
func (c *Conn) CloseWrite() error {
	return wrap("close-write", c.path, c.uc.CloseWrite())
}

// Close closes the socket, every received descriptor that nobody took, and
// the peer's pidfd. It wakes blocked reads and writes. Only the first call
// does anything; later calls return its result. With a closer set (see
// [Conn.SetFDCloser]) the descriptors nobody took go to the closer instead,
// called by the first Close once the Conn's state is settled, so a slow
// closer holds up that call alone; without one they are closed inline and
// released from the [FDBudget], if any.
func (c *Conn) Close() error {
	var unclaimed []int
	c.closeOnce.Do(func() {
		c.fdMu.Lock()
		c.closed = true
		unclaimed, c.fds = c.fds, nil
		c.fdMu.Unlock()
		c.closeErr = wrap("close", c.path, c.uc.Close())
		c.pidMu.Lock()
		c.pidClosed = true
		c.pidMu.Unlock()
		if c.pidfd >= 0 {
			unix.Close(c.pidfd)
		}
	})
	// Outside closeOnce: a closer that calls Close again must not
	// deadlock on it.
	if len(unclaimed) > 0 {
		c.disposeFDs(unclaimed)
	}
	return c.closeErr
}

// File returns a duplicate of the socket as an *os.File, for instance to
// pass one end of a [Socketpair] to another process with
// [Conn.WriteWithFDs]. Closing either does not affect the other.
func (c *Conn) File() (*os.File, error) {
	f, err := c.uc.File()
	return f, wrap("file", c.path, err)
}

// LocalAddr returns the local address: the listener's path for an accepted
// connection, an unnamed address otherwise.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the remote address: the dialled path for a dialled
// connection, an unnamed address otherwise.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines, as for [net.Conn]. A read or
// write that times out returns an error for which errors.Is(err,
// os.ErrDeadlineExceeded) is true.
func (c *Conn) SetDeadline(t time.Time) error {
	return wrap("set-deadline", c.path, c.uc.SetDeadline(t))
}

// SetReadDeadline sets the read deadline, as for [net.Conn].
func (c *Conn) SetReadDeadline(t time.Time) error {
	return wrap("set-read-deadline", c.path, c.uc.SetReadDeadline(t))
}

// SetWriteDeadline sets the write deadline, as for [net.Conn]. A write that
// times out may have sent part of its data; the count says how much.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return wrap("set-write-deadline", c.path, c.uc.SetWriteDeadline(t))
}
