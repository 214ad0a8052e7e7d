package clientlib

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/busd/busd/unixsock"
)

// ErrUntrustedBus is returned by Connect when the socket's directory could
// hold an impostor's socket, or the process at the other end of the socket
// is not run by a trusted user: the client sends nothing to it, no message
// and no descriptor. The trusted users are this process's effective user,
// root, and those given to WithTrustedUIDs. The error also matches
// unixsock.ErrInsecureDir when the directory is at fault.
var ErrUntrustedBus = errors.New("bus: untrusted bus")

// WithTrustedUIDs adds users (numeric uids) whose buses this client
// trusts, besides its own effective user and root: a bus run by a service
// account, in a directory that account owns.
func WithTrustedUIDs(uids ...int) Option {
	return func(o *options) error {
		for _, u := range uids {
			if u < 0 {
				return fmt.Errorf("bus: trusted uid %d is negative", u)
			}
		}
		o.trusted = append(o.trusted, uids...)
		return nil
	}
}

// trustedUIDs lists the users whose sockets and brokers o trusts.
func (o *options) trustedUIDs() []int {
	return append([]int{os.Geteuid(), 0}, o.trusted...)
}

// checkBusDir checks, before dialing, that the directory of the socket at
// path could not hold an impostor's socket (unixsock.CheckDir). A missing
// directory is left to the dial, which reports that no bus is there.
func checkBusDir(path string, trusted []int) error {
	err := unixsock.CheckDir(filepath.Dir(path), trusted...)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("%w: %w; refusing to connect (a bus run by another user: WithTrustedUIDs, or bus -trust UID)", ErrUntrustedBus, err)
}

// checkBroker checks that the process listening at the other end of sock
// runs as a trusted user, from the credentials the kernel recorded when
// it called listen(2) (SO_PEERCRED): they cannot be forged.
func checkBroker(sock *unixsock.Conn, trusted []int) error {
	peer := sock.Peer()
	if slices.Contains(trusted, peer.UID) {
		return nil
	}
	return fmt.Errorf("%w: the broker (pid %d) runs as uid %d, not as a trusted user (uid %s: you, root, and any given to WithTrustedUIDs); refusing to send it anything (a bus run by another user: WithTrustedUIDs, or bus -trust UID)",
		ErrUntrustedBus, peer.PID, peer.UID, strings.Trim(fmt.Sprint(trusted), "[]"))
}
