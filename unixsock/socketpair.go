package unixsock

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Socketpair returns the two ends of a new connected Unix stream socket
// pair, each a [Conn] with opts applied. The peer credentials of both ends are
// the calling process's.
func Socketpair(opts ...ConnOption) (*Conn, *Conn, error) {
	cfg, err := newConnConfig(opts)
	if err != nil {
		return nil, nil, wrap("socketpair", "", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, wrap("socketpair", "", os.NewSyscallError("socketpair", err))
	}
	a, err := connFromFD(fds[0], "", false, cfg)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, wrap("socketpair", "", err)
	}
	b, err := connFromFD(fds[1], "", false, cfg)
	if err != nil {
		a.Close()
		return nil, nil, wrap("socketpair", "", err)
	}
	return a, b, nil
}

// connFromFD wraps fd, which it always closes, in a Conn; path and local
// are newConn's.
func connFromFD(fd int, path string, local bool, cfg connConfig) (*Conn, error) {
	f := os.NewFile(uintptr(fd), "unix")
	nc, err := net.FileConn(f) // dups fd
	f.Close()
	if err != nil {
		return nil, err
	}
	return newConn(nc.(*net.UnixConn), path, local, cfg)
}
