package bus

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// Accept backs off between minBackoff and maxBackoff, doubling, while it
// fails for want of a resource the broker may get back (descriptors,
// memory, buffers), instead of ending the broker: a client holding many
// descriptors once made busd exit on EMFILE.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// nextBackoff returns how long to wait before accepting again after err,
// prev being the last wait; 0 means err is not one to wait out.
func nextBackoff(err error, prev time.Duration) time.Duration {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return 0
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM:
		return min(max(2*prev, minBackoff), maxBackoff)
	}
	return 0
}

// maxTurnedAway bounds the connections Shutdown takes from one listener's
// accept queue: the queue's length at the kernel's default somaxconn, so
// that clients connecting as fast as they are turned away cannot hold
// shutdown up.
const maxTurnedAway = 4096

// turnAway answers the connections waiting in l's accept queue with bye in
// place of INFO, and closes them, without waiting for any: closing the
// listener would reset them, yet they connected before the broker stopped,
// like one accepted meanwhile, which gets bye (start). A listener systemd
// passed keeps its queue when the broker closes it, for the broker systemd
// starts next, so it is left alone.
func (s *Server) turnAway(l *unixsock.Listener, bye *wire.Error) {
	if l.Activated() {
		return
	}
	for range maxTurnedAway {
		sock, err := l.TryAccept()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("could not take a waiting connection to turn it away", "err", err)
		}
		if sock == nil {
			return
		}
		s.refuse(sock, bye)
	}
}

// sleep waits d, or until the server shuts down; it reports whether the
// server still runs.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !s.isClosing()
	case <-s.quit:
		return false
	}
}

// refuseOwnSockets refuses descriptors that are sockets connected to this
// broker (or its listening sockets). Passed through the bus, such a socket
// would keep a connection alive inside the broker: a client that sent its
// own connection and exited left the broker holding that connection, and
// all the output queued for it, forever (the reference cycle of dbus
// CVE-2014-3637).
func (s *Server) refuseOwnSockets(fds []int) error {
	listeners := *s.serving.Load()
	for i, fd := range fds {
		for _, l := range listeners {
			if l.Owns(fd) {
				s.stats.refusedFDs.Add(1)
				return wire.Errorf(wire.CodeRefusedFD,
					"descriptor %d of %d is a socket connected to this broker; the broker does not pass its own connections", i+1, len(fds))
			}
		}
	}
	return nil
}
