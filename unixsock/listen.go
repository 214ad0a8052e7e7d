package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenBacklog asks for the largest accept queue; the kernel clamps it to
// net.core.somaxconn.
const listenBacklog = 1<<16 - 1

// Listener accepts connections on a Unix stream socket, made by [Listen] or
// taken from systemd by [ActivationListeners].
type Listener struct {
	ln      *net.UnixListener
	path    string
	name    string
	addr    *net.UnixAddr
	bound   string   // getsockname(2) of the socket; see Owns
	lock    *os.File // nil for activated listeners that could not take theirs
	created fileID   // the socket inode Listen made; zero if none
	connCfg connConfig

	closeOnce sync.Once
	closeErr  error
}

// fileID identifies an inode, so Close can tell its own socket file from one
// that has since replaced it.
type fileID struct{ dev, ino uint64 }

// Listen creates a Unix stream socket at path and listens on it.
//
// The parent directory is created 0700 if it is missing (its own parent must
// exist; with [WithGroup], 0750 and given to the group) and refused with
// [ErrInsecureDir] if group or other users can write to it or the effective
// user does not own it; /tmp itself therefore does not qualify, a private
// directory inside it does. Listen then takes an exclusive lock on the lock
// file beside the socket (DIR/N.lock for DIR/N.sock, else path+".lock"),
// held until Close. If another listener holds it, Listen fails at once with
// [ErrServerRunning], naming the holder's pid. Holding the lock, it replaces
// a stale socket file at path, but refuses with [ErrNotSocket] to replace
// anything else.
//
// The socket is bound under a temporary name in the same directory
// (".N.sock.XXXXXX", or ".XXXXXX" if the path leaves no room), given its
// group and mode (see [WithGroup] and [WithMode]) while it cannot accept
// connections yet, put into the listening state and then renamed onto path.
// A client therefore never finds a socket at path that refuses connections
// or has the wrong permissions or group. A path longer than 107 bytes (the
// kernel's 108-byte sun_path less its NUL) fails with [ErrPathTooLong].
// Abstract socket names (a leading '@') are not supported: file permissions
// do not apply to them.
func Listen(path string, opts ...ListenOption) (*Listener, error) {
	cfg, err := newListenConfig(opts)
	if err != nil {
		return nil, wrap("listen", path, err)
	}
	l, err := listen(path, cfg)
	return l, wrap("listen", path, err)
}

func listen(path string, cfg *listenConfig) (*Listener, error) {
	connCfg, err := newConnConfig(cfg.connOpts)
	if err != nil {
		return nil, err
	}
	if err := checkPathLen(path); err != nil {
		return nil, err
	}
	if path == "" || path[0] == '@' {
		return nil, fmt.Errorf("empty or abstract socket path: %w", syscall.EINVAL)
	}
	dir := filepath.Dir(path)
	if err := ensureDir(dir, cfg.gid); err != nil {
		return nil, err
	}
	lock, err := acquireLock(lockPath(path), path)
	if err != nil {
		return nil, err
	}
	if err := checkReplaceable(path); err != nil {
		lock.Close()
		return nil, err
	}
	ln, tmp, id, err := bindTemp(dir, filepath.Base(path), cfg.mode, cfg.gid)
	if err != nil {
		lock.Close()
		return nil, err
	}
	bound, err := boundName(ln)
	if err == nil {
		// rename(2) replaces a stale socket atomically: a client sees
		// the old file or the new one, never no file.
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		os.Remove(tmp)
		lock.Close()
		return nil, err
	}
	return &Listener{
		ln:      ln,
		path:    path,
		addr:    &net.UnixAddr{Name: path, Net: "unix"},
		bound:   bound,
		lock:    lock,
		created: id,
		connCfg: connCfg,
	}, nil
}

// ensureDir creates dir 0700 if it is missing and checks that only its
// owner, the effective user, can write to it, and that it is no symbolic
// link (CheckDir). With a group (gid >= 0) the directory is shared with it
// instead (ensureSharedDir).
func ensureDir(dir string, gid int) error {
	if gid >= 0 {
		return ensureSharedDir(dir, gid)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return CheckDir(dir, os.Geteuid())
}

// checkReplaceable allows path to be missing or a socket (a stale one: we
// hold the lock), and nothing else.
func checkReplaceable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: the path exists with mode %v; refusing to replace it", ErrNotSocket, fi.Mode())
	}
	return nil
}

// bindTemp returns a listening socket bound to a fresh temporary name in dir
// with the given mode and group (gid -1: bind's), that name, and the socket
// file's identity.
func bindTemp(dir, base string, mode os.FileMode, gid int) (*net.UnixListener, string, fileID, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, "", fileID{}, os.NewSyscallError("socket", err)
	}
	var tmp string
	for range 10 {
		if tmp, err = tempName(dir, base); err != nil {
			unix.Close(fd)
			return nil, "", fileID{}, err
		}
		if err = unix.Bind(fd, &unix.SockaddrUnix{Name: tmp}); err != unix.EADDRINUSE {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, "", fileID{}, os.NewSyscallError("bind", err)
	}
	ln, id, err := listenBound(fd, tmp, mode, gid)
	if err != nil {
		os.Remove(tmp)
		return nil, "", fileID{}, err
	}
	return ln, tmp, id, nil
}

// listenBound sets the group (unless gid is -1) and mode of the bound
// socket file before listening: no one can connect to a socket that is not
// listening, so no connection is ever made under the permissions or the
// group bind chose from the umask and the process. The file is changed by
// its (temporary) path: fchown and fchmod on a socket descriptor change the
// socket's inode in sockfs, not the file bind made. It closes fd; the
// listener works on a duplicate.
func listenBound(fd int, tmp string, mode os.FileMode, gid int) (*net.UnixListener, fileID, error) {
	f := os.NewFile(uintptr(fd), tmp)
	defer f.Close()
	if gid >= 0 {
		if err := unix.Lchown(tmp, -1, gid); err != nil {
			return nil, fileID{}, chownError("the socket", gid, err)
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return nil, fileID{}, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(tmp, &st); err != nil {
		return nil, fileID{}, os.NewSyscallError("lstat", err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		return nil, fileID{}, os.NewSyscallError("listen", err)
	}
	nl, err := net.FileListener(f)
	if err != nil {
		return nil, fileID{}, err
	}
	ln := nl.(*net.UnixListener)
	// Close removes the socket itself, and only if it is still ours.
	ln.SetUnlinkOnClose(false)
	return ln, fileID{dev: st.Dev, ino: st.Ino}, nil
}

// tempName returns a path in dir for binding before the rename. It is
// dot-prefixed so directory scans for *.sock skip it, and falls back to a
// shorter name when the long one would not fit sun_path.
func tempName(dir, base string) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var r [6]byte
	for i := range r {
		r[i] = alphabet[rand.IntN(len(alphabet))]
	}
	for _, name := range []string{"." + base + "." + string(r[:]), "." + string(r[:])} {
		if p := filepath.Join(dir, name); len(p) <= maxPathLen {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no room for a temporary name in %q within %d bytes", ErrPathTooLong, dir, maxPathLen)
}

// Accept waits for and returns the next connection, with the peer's
// credentials read and the options of [WithConnOptions] applied. After Close
// it returns an error for which errors.Is(err, net.ErrClosed) is true.
func (l *Listener) Accept() (*Conn, error) {
	uc, err := l.ln.AcceptUnix()
	if err != nil {
		return nil, wrap("accept", l.path, err)
	}
	c, err := newConn(uc, l.path, true, l.connCfg)
	return c, wrap("accept", l.path, err)
}

// TryAccept returns a connection waiting in the accept queue, as
// [Listener.Accept] would, but never waits for one: it returns nil and a nil
// error when none waits. A server that stops uses it to answer the clients
// that connected before it closes the listener, which Close would reset. It
// may run while another goroutine is blocked in Accept; each connection goes
// to one of them.
func (l *Listener) TryAccept() (*Conn, error) {
	rc, err := l.ln.SyscallConn()
	if err != nil {
		return nil, wrap("accept", l.path, err)
	}
	nfd := -1
	var aerr error
	// Control rather than Read: Read would queue behind an Accept blocked
	// on the same listener.
	cerr := rc.Control(func(fd uintptr) {
		for {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if aerr != unix.EINTR && aerr != unix.ECONNABORTED {
				return
			}
		}
	})
	switch {
	case cerr != nil:
		return nil, wrap("accept", l.path, cerr)
	case aerr == unix.EAGAIN:
		return nil, nil
	case aerr != nil:
		return nil, wrap("accept", l.path, os.NewSyscallError("accept4", aerr))
	}
	c, err := connFromFD(nfd, l.path, true, l.connCfg)
	return c, wrap("accept", l.path, err)
}

// Close stops listening and wakes a blocked Accept. For a socket Listen
// created, it first removes the socket file, if the file at the path is still
// the one it created, and then releases the lock; it never removes the lock
// file. Removing before unlocking means no successor can have published its
// own socket yet. Activated listeners never remove anything. Only the first
// call does anything; later calls return its result.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.created != (fileID{}) {
			errs = append(errs, removeIfSame(l.path, l.created))
		}
		errs = append(errs, l.ln.Close())
		if l.lock != nil {
			errs = append(errs, l.lock.Close())
		}
		l.closeErr = wrap("close", l.path, errors.Join(errs...))
	})
	return l.closeErr
}

// removeIfSame removes path if it is still the inode id.
func removeIfSame(path string, id fileID) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return os.NewSyscallError("lstat", err)
	}
	if (fileID{dev: st.Dev, ino: st.Ino}) != id {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Path returns the socket's path: the one given to Listen, or the address an
// activated socket is bound to.
func (l *Listener) Path() string { return l.path }

// Name returns the name systemd gave an activated listener in
// LISTEN_FDNAMES ("unknown" if it gave none, as libsystemd reports), and ""
// for a listener made by Listen.
func (l *Listener) Name() string { return l.name }

// Activated reports whether systemd passed the listener
// ([ActivationListeners]). systemd keeps such a socket open after Close, with
// the connections waiting in its accept queue, for the next server it starts.
func (l *Listener) Activated() bool { return l.name != "" }

// Addr returns the listener's address, the published path rather than the
// temporary name the socket was bound to.
func (l *Listener) Addr() net.Addr { return l.addr }

// NetListener returns l as a [net.Listener] whose Accept returns *Conn values
// as net.Conn, for code written against package net. Closing either closes l.
func (l *Listener) NetListener() net.Listener { return netListener{l} }

type netListener struct{ l *Listener }

func (n netListener) Accept() (net.Conn, error) {
	c, err := n.l.Accept()
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (n netListener) Close() error   { return n.l.Close() }
func (n netListener) Addr() net.Addr { return n.l.addr }
