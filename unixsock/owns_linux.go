package unixsock

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Owns reports whether fd is the listening socket of l (or a duplicate of
// it), or a Unix socket connected to it: the client end of a connection l
// accepted or could accept, or the server end [Listener.Accept] returned.
// A broker that holds passed descriptors uses it to refuse a connection's
// own socket, or its listener, sent through the bus: holding such a
// descriptor would keep the connection alive for as long as the descriptor
// waits to be delivered, a reference cycle (dbus CVE-2014-3637).
//
// Sockets are matched by the address l is bound to, as getsockname(2)
// reports it, which is what getpeername(2) reports on a client socket and
// getsockname(2) on the listener and the sockets it accepted. For a
// listener made by [Listen] that is the temporary name it was bound under,
// not its path; for an activated one, the address systemd bound. A socket
// bound to the same address after l's own was unlinked or renamed away
// would therefore also be reported as owned; in Listen's private directory
// only the listener's own user can bind there. Anything that is not an
// AF_UNIX socket (pipes, files, memfds, TCP sockets, closed descriptors) is
// not owned.
//
// Owns never blocks and costs one or two system calls. It keeps working
// after l is closed.
func (l *Listener) Owns(fd int) bool {
	// getsockname fails with ENOTSOCK on anything that is not a socket and
	// names the address family of those that are, so it is also the
	// type check.
	local, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	if ua, ok := local.(*unix.SockaddrUnix); !ok {
		return false
	} else if ua.Name == l.bound {
		return true // l itself, or a connection it accepted
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return false // not connected, for instance
	}
	ua, ok := peer.(*unix.SockaddrUnix)
	return ok && ua.Name == l.bound
}

// boundName returns the address ln is bound to as getsockname(2) reports
// it, which can differ from the path it is published at.
func boundName(ln *net.UnixListener) (string, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return "", err
	}
	var sa unix.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return "", err
	}
	if serr != nil {
		return "", os.NewSyscallError("getsockname", serr)
	}
	// An unnamed listener cannot exist (listen(2) binds an abstract name
	// to an unbound socket), but one would make every unnamed socket look
	// owned.
	ua, ok := sa.(*unix.SockaddrUnix)
	if !ok || ua.Name == "" {
		return "", fmt.Errorf("%w: the listener is bound to no Unix socket address (%T)", ErrNotSocket, sa)
	}
	return ua.Name, nil
}
