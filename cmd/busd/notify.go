package main

import (
	"fmt"
	"net"
	"os"
)

// States busd reports to systemd (sd_notify(3)).
const (
	notifyReady    = "READY=1"    // listening, socket published
	notifyStopping = "STOPPING=1" // shutdown has begun
)

// notifier reports busd's state to the service manager that started it,
// if any: NOTIFY_SOCKET names a Unix datagram socket (a leading '@' an
// abstract one), and each state is one datagram to it. It is the
// protocol of sd_notify(3), written out here rather than taken from a
// library.
type notifier struct {
	addr *net.UnixAddr // nil: nobody to tell
}

// newNotifier reads NOTIFY_SOCKET and unsets it, so that no child takes
// busd's notifications for its own.
func newNotifier() (*notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	switch {
	case path == "":
		return &notifier{}, nil
	case path[0] != '/' && path[0] != '@':
		// vsock addresses (vsock:CID:PORT) are for virtual machines, not
		// for busd.
		return &notifier{}, fmt.Errorf("NOTIFY_SOCKET=%q: only a path or an abstract (@) address is supported", path)
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// notify sends state; with nobody to tell it does nothing.
func (n *notifier) notify(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notifying %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notifying %s of %s: %w", n.addr.Name, state, err)
	}
	return nil
}
