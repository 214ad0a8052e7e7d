package unixsock

import (
	"context"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Dial connects to the Unix stream socket at path. ctx bounds the connection
// attempt only; use deadlines for the Conn's reads and writes. A path that no
// server listens on gives an error for which errors.Is reports
// syscall.ENOENT (no socket file) or syscall.ECONNREFUSED (a stale one).
func Dial(ctx context.Context, path string, opts ...ConnOption) (*Conn, error) {
	cfg, err := newConnConfig(opts)
	if err != nil {
		return nil, wrap("dial", path, err)
	}
	if err := checkPathLen(path); err != nil {
		return nil, wrap("dial", path, err)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, wrap("dial", path, err)
	}
	c, err := newConn(nc.(*net.UnixConn), path, false, cfg)
	return c, wrap("dial", path, err)
}

// FileConn returns a [Conn] for the connected Unix stream socket f, for
// instance one received from a peer. It duplicates the descriptor and does
// not take ownership of f: the caller still closes f, and closing f does not
// affect the Conn. Other kinds of descriptors give an error wrapping
// [ErrNotSocket].
func FileConn(f *os.File, opts ...ConnOption) (*Conn, error) {
	cfg, err := newConnConfig(opts)
	if err != nil {
		return nil, wrap("file-conn", f.Name(), err)
	}
	// f.Fd would switch the shared file description to blocking mode.
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, wrap("file-conn", f.Name(), err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = checkStreamSocket(int(fd), false) }); err != nil {
		return nil, wrap("file-conn", f.Name(), err)
	}
	if serr != nil {
		return nil, wrap("file-conn", f.Name(), serr)
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, wrap("file-conn", f.Name(), err)
	}
	c, err := newConn(nc.(*net.UnixConn), "", false, cfg)
	return c, wrap("file-conn", f.Name(), err)
}

// checkStreamSocket verifies that fd is an AF_UNIX SOCK_STREAM socket and
// whether it is listening, before anything takes it over.
func checkStreamSocket(fd int, listening bool) error {
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("%w: fd %d: %w", ErrNotSocket, fd, err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("%w: fd %d: %w", ErrNotSocket, fd, err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("%w: fd %d: %w", ErrNotSocket, fd, err)
	}
	if dom != unix.AF_UNIX || typ != unix.SOCK_STREAM {
		return fmt.Errorf("%w: fd %d is domain %d type %d, want a Unix stream socket", ErrNotSocket, fd, dom, typ)
	}
	if (acc != 0) != listening {
		return fmt.Errorf("%w: fd %d: listening is %t, want %t", ErrNotSocket, fd, acc != 0, listening)
	}
	return nil
}

// checkPathLen refuses a path that does not fit sun_path, which the kernel
// would reject with a bare EINVAL. Callers wrap the error in an *OpError that
// names the path.
func checkPathLen(path string) error {
	if len(path) > maxPathLen {
		return fmt.Errorf("%w: %d bytes, the limit is %d (the kernel's %d-byte sun_path with its NUL)",
			ErrPathTooLong, len(path), maxPathLen, sunPathLen)
	}
	return nil
}
