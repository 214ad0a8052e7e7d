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

// trustedUIDs lists the users whose sockets and brokers o trusts, each
// once.
func (o *options) trustedUIDs() []int {
	uids := append([]int{os.Geteuid(), 0}, o.trusted...)
	slices.Sort(uids)
	return slices.Compact(uids)
}

// checkBusDir checks, before dialing, that the directory of the socket at
// path could not hold an impostor's socket (unixsock.CheckDir). A missing
// directory is left to the dial, which reports that no bus is there.
func checkBusDir(path string, trusted []int) error {
	err := unixsock.CheckDir(filepath.Dir(path), trusted...)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// unixsock's words for the fault, without its prefix: this error
	// already says what kind it is.
	why := strings.TrimPrefix(err.Error(), unixsock.ErrInsecureDir.Error()+": ")
	if _, serr := os.Lstat(path); errors.Is(serr, fs.ErrNotExist) {
		why += " (no socket is there yet)"
	}
	advice := "for a bus run by another user: WithTrustedUIDs, or bus -trust UID"
	if fi, serr := os.Lstat(filepath.Dir(path)); serr == nil && fi.Mode().Perm()&0o022 != 0 {
		advice = "use a bus in a directory only its user may write to, such as the default $XDG_RUNTIME_DIR/busd"
	}
	return &untrustedDirError{err: err, msg: fmt.Sprintf("%v: %s; refusing to connect to %s: %s", ErrUntrustedBus, why, path, advice)}
}

// untrustedDirError is ErrUntrustedBus for the socket's directory; it also
// matches unixsock.ErrInsecureDir.
type untrustedDirError struct {
	err error // from unixsock.CheckDir
	msg string
}

func (e *untrustedDirError) Error() string   { return e.msg }
func (e *untrustedDirError) Unwrap() []error { return []error{ErrUntrustedBus, e.err} }

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
