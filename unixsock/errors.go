package unixsock

import (
	"errors"
	"os"
)

// Sentinel errors. They are returned wrapped (in an [*OpError], and often
// with detail added through fmt's %w), so compare with [errors.Is].
var (
	// ErrServerRunning means another live listener holds the lock file of
	// the socket path. The wrapping error names the holder's pid when the
	// lock file records one.
	ErrServerRunning = errors.New("unixsock: a live server holds the socket")

	// ErrPathTooLong means a socket path does not fit the kernel's 108-byte
	// sun_path with its terminating NUL, so it is longer than 107 bytes. The
	// wrapping error names the path, its length and the limit.
	ErrPathTooLong = errors.New("unixsock: socket path too long")

	// ErrInsecureDir means the socket's directory is writable by group or
	// other users, is not owned by a user trusted with it (for Listen, the
	// effective user), or is a symbolic link, so another user could
	// replace the socket or its lock file, or choose where they are.
	ErrInsecureDir = errors.New("unixsock: insecure socket directory")

	// ErrUnreachableDir means [Listen] was given a group ([WithGroup]) and
	// the socket's directory, which exists already, does not let that
	// group search it, so the group's members could not reach the socket.
	// The wrapping error names the directory, its mode and group, and what
	// would do.
	ErrUnreachableDir = errors.New("unixsock: the socket's group cannot reach its directory")

	// ErrNotInGroup means [Listen] may not give the socket, or the
	// directory it creates, the group of [WithGroup]: only a member of the
	// group, or root, may. It comes with fs.ErrPermission (EPERM), and the
	// wrapping error names the user and the group.
	ErrNotInGroup = errors.New("unixsock: not allowed to give the socket that group")

	// ErrFDsTruncated means the kernel truncated the control data of a read
	// (MSG_CTRUNC): the peer sent more descriptors at once than the
	// connection accepts, or than its [FDBudget] granted (the error then
	// also matches [ErrFDBudget]), or this process hit its descriptor
	// limit. Every descriptor of that read has been closed (or handed to
	// the Conn's closer, see [Conn.SetFDCloser]) and the connection's
	// descriptor FIFO no longer matches its frames; close the connection.
	ErrFDsTruncated = errors.New("unixsock: received file descriptors truncated (MSG_CTRUNC)")

	// ErrFDBudget means a read was truncated (it also matches
	// [ErrFDsTruncated]) while the Conn's [FDBudget] had granted it fewer
	// descriptors than the connection's limit, so the budget is the likely
	// cause. The wrapping error names how many descriptors the read could
	// accept. Like any truncation it makes the connection unusable.
	ErrFDBudget = errors.New("unixsock: descriptor budget exhausted")

	// ErrTooManyFDs means a write tried to attach more than
	// [MaxFDsPerMessage] descriptors.
	ErrTooManyFDs = errors.New("unixsock: too many file descriptors in one message")

	// ErrMissingFDs means [Conn.TakeFDs] asked for more descriptors than
	// are queued: the peer announced descriptors it did not send.
	ErrMissingFDs = errors.New("unixsock: fewer file descriptors received than announced")

	// ErrNotSocket means the socket path exists and is not a socket, so
	// Listen refuses to replace it, or a descriptor given to [FileConn] is
	// not a Unix stream socket.
	ErrNotSocket = errors.New("unixsock: not a socket")

	// ErrBadControlMessage means a read carried ancillary data other than
	// SCM_RIGHTS, or malformed SCM_RIGHTS data. Any descriptors in it have
	// been closed; close the connection.
	ErrBadControlMessage = errors.New("unixsock: unexpected control message")

	// ErrNoPidFD means a Conn holds no pidfd for its peer: the kernel
	// lacks SO_PEERPIDFD (before Linux 6.5), or the peer was gone before
	// the connection was set up.
	ErrNoPidFD = errors.New("unixsock: no pidfd for the peer")

	// ErrInvalidOption means an option was given an out-of-range value.
	ErrInvalidOption = errors.New("unixsock: invalid option")
)

// MaxFDsPerMessage is the kernel's SCM_MAX_FD: the most descriptors one
// sendmsg(2) may carry. Sending more fails with EINVAL, so writes refuse it
// up front with [ErrTooManyFDs].
const MaxFDsPerMessage = 253

// OpError is the error returned by exported functions and methods of this
// package, except for the io.EOF of [Conn.Read]. It records the operation and the socket path (empty for
// connections without one, such as socketpairs) and wraps the cause, so
// errors.Is(err, syscall.ECONNREFUSED) or errors.Is(err, ErrServerRunning)
// see through it.
type OpError struct {
	// Op is the operation: "listen", "dial", "accept", "read", "write", ...
	Op string
	// Path is the socket path involved, or empty.
	Path string
	// Err is the cause.
	Err error
}

// Error returns "op path: cause", or "op: cause" when there is no path.
func (e *OpError) Error() string {
	if e.Path == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the error is a deadline expiring, so that an
// *OpError satisfies [net.Error] the way errors from a [net.Conn] do.
func (e *OpError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.Is(e.Err, os.ErrDeadlineExceeded) || (errors.As(e.Err, &t) && t.Timeout())
}

// Temporary reports the same as Timeout. It exists only so *OpError
// satisfies [net.Error]; like net's own Temporary it is not a useful signal.
func (e *OpError) Temporary() bool { return e.Timeout() }

// wrap returns err as an *OpError, or nil for nil. It is used once, at the
// exported boundary.
func wrap(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Path: path, Err: err}
}
