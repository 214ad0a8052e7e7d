package unixsock

import (
	"fmt"
	"math"
	"os"
)

// DefaultMode is the permission of a socket created by [Listen] unless
// [WithMode] says otherwise: only the owner may connect.
const DefaultMode os.FileMode = 0o600

// DefaultMaxRecvFDs is the number of descriptors one read of a [Conn] can
// receive unless [WithMaxRecvFDs] says otherwise.
const DefaultMaxRecvFDs = 64

// ListenOption configures [Listen] and [ActivationListeners].
type ListenOption func(*listenConfig) error

// ConnOption configures a [Conn] made by [Dial], [Socketpair], [FileConn] or
// (through [WithConnOptions]) by [Listener.Accept].
type ConnOption func(*connConfig) error

type listenConfig struct {
	mode     os.FileMode
	gid      int // the socket's group; -1 leaves the one bind(2) chose
	connOpts []ConnOption
}

type connConfig struct {
	maxRecvFDs int
	sendBuffer int // SO_SNDBUF to ask for; 0 keeps the system default
}

// WithMode sets the permission bits of the socket file (default
// [DefaultMode], 0600). Other users also need search permission on the
// directory to connect. It has no effect on activated listeners, whose mode
// systemd sets.
func WithMode(mode os.FileMode) ListenOption {
	return func(c *listenConfig) error {
		if mode&^os.ModePerm != 0 {
			return fmt.Errorf("%w: mode %v has bits other than permissions", ErrInvalidOption, mode)
		}
		c.mode = mode
		return nil
	}
}

// WithGroup makes gid (a numeric group id) the group of the socket file,
// so that with a mode such as 0660 (see [WithMode]) the members of that
// group may connect. The group is set, like the mode, before the socket
// listens and is renamed into place. Changing a file's group needs the
// listening user to be a member of the group, or root (CAP_CHOWN); if it
// is not, Listen fails with an error matching [ErrNotInGroup] and
// fs.ErrPermission.
//
// The members also need search permission on the socket's directory. A
// directory Listen creates is then made 0750 and given to gid (instead of
// 0700): the members may reach and list the sockets in it and write
// nothing there. A directory that exists already is used as it is, if the
// group can search it (its group is gid with search permission, or others
// have search permission); otherwise Listen fails with
// [ErrUnreachableDir] rather than publish a socket the group cannot reach.
// Group or other write permission on it is refused, as always. The
// directories above it must let the members through too; Listen does not
// check those.
//
// It has no effect on activated listeners, whose group systemd sets
// (SocketGroup=).
func WithGroup(gid int) ListenOption {
	return func(c *listenConfig) error {
		// (gid_t)-1 is chown(2)'s "leave it alone", never a group.
		if gid < 0 || gid >= math.MaxUint32 {
			return fmt.Errorf("%w: group id %d not in [0, %d]", ErrInvalidOption, gid, uint32(math.MaxUint32-1))
		}
		c.gid = gid
		return nil
	}
}

// WithConnOptions sets the options of every [Conn] the listener accepts.
func WithConnOptions(opts ...ConnOption) ListenOption {
	return func(c *listenConfig) error {
		// Validate now so a bad option fails Listen, not every Accept.
		if _, err := newConnConfig(opts); err != nil {
			return err
		}
		c.connOpts = append(c.connOpts, opts...)
		return nil
	}
}

// WithMaxRecvFDs sets how many descriptors one read can receive (default
// [DefaultMaxRecvFDs], at most [MaxFDsPerMessage]); the control buffer is
// sized for exactly that many. The kernel never merges the descriptors of two
// sendmsg(2) calls into one read, so this is the most descriptors the peer
// may attach to a single write. If it attaches more, the read fails with
// [ErrFDsTruncated]. Zero means the connection accepts no descriptors at all.
func WithMaxRecvFDs(n int) ConnOption {
	return func(c *connConfig) error {
		if n < 0 || n > MaxFDsPerMessage {
			return fmt.Errorf("%w: max received fds %d not in [0, %d]", ErrInvalidOption, n, MaxFDsPerMessage)
		}
		c.maxRecvFDs = n
		return nil
	}
}

// WithSendBuffer asks the kernel for a send buffer of n bytes (SO_SNDBUF)
// instead of the system default (net.core.wmem_default, typically 208 KiB).
// On a Unix stream socket it bounds the data written and not yet read by
// the peer, so a larger one lets a writer run further ahead of a reader
// that is briefly descheduled. The kernel doubles n for its bookkeeping and
// caps it at net.core.wmem_max; memory is used only by data in flight.
func WithSendBuffer(n int) ConnOption {
	return func(c *connConfig) error {
		if n < 0 {
			return fmt.Errorf("%w: send buffer %d is negative", ErrInvalidOption, n)
		}
		c.sendBuffer = n
		return nil
	}
}

func newListenConfig(opts []ListenOption) (*listenConfig, error) {
	c := &listenConfig{mode: DefaultMode, gid: -1}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func newConnConfig(opts []ConnOption) (connConfig, error) {
	c := connConfig{maxRecvFDs: DefaultMaxRecvFDs}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return connConfig{}, err
		}
	}
	return c, nil
}
