package unixsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen returns a listener closed on cleanup, with a watchdog.
func listenT(t *testing.T, path string, opts ...ListenOption) *Listener {
	t.Helper()
	l, err := Listen(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	watchdog(t, 10*time.Second, l)
	return l
}

// dialAccept connects to l and returns both ends, closed on cleanup.
func dialAccept(t *testing.T, l *Listener) (client, server *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := Dial(ctx, l.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func TestListenDialAccept(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "b.sock")
	l := listenT(t, path)
	if l.Path() != path || l.Addr().String() != path || l.Name() != "" {
		t.Fatalf("Path %q Addr %q Name %q", l.Path(), l.Addr(), l.Name())
	}
	client, server := dialAccept(t, l)
	me := ownCred(t, os.Getpid())
	if !sameCred(client.Peer(), me) || !sameCred(server.Peer(), me) {
		t.Fatalf("creds %+v / %+v; want %+v", client.Peer(), server.Peer(), me)
	}
	checkPidFD(t, server.PeerPidFD(), os.Getpid())
	// Not the temporary name the socket was bound to.
	if got := server.LocalAddr().String(); got != path {
		t.Errorf("server LocalAddr = %q; want %q", got, path)
	}
	if got := client.RemoteAddr().String(); got != path {
		t.Errorf("client RemoteAddr = %q; want %q", got, path)
	}
	if _, err := client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("got %q, %v", buf, err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket still there after Close: %v", err)
	}
	if _, err := os.Lstat(lockPath(path)); err != nil {
		t.Fatalf("lock file gone after Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v; want net.ErrClosed", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("directory holds %v; want only the lock file", ents)
	}
}

func TestListenMode(t *testing.T) {
	checkFDLeaks(t)
	// With no umask, bind would create the socket 0777: the mode must
	// come from Listen, not from luck.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		opts []ListenOption
		want os.FileMode
	}{{nil, 0o600}, {[]ListenOption{WithMode(0o660)}, 0o660}} {
		path := tempSockPath(t, "m.sock")
		l := listenT(t, path, tc.opts...)
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != tc.want {
			t.Errorf("socket mode %v; want socket %v", fi.Mode(), tc.want)
		}
		l.Close()
	}
}

func TestListenCreatesPrivateDir(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "sub/c.sock")
	listenT(t, path)
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %v; want 0700", fi.Mode().Perm())
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "s.sock")
	// A server that died without cleaning up: the file stays, nobody
	// listens.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ctx := context.Background()
	if _, err := Dial(ctx, path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial to stale socket = %v; want ECONNREFUSED", err)
	}
	l := listenT(t, path)
	dialAccept(t, l)
}

func TestListenSecondListenerRefused(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "d.sock")
	l := listenT(t, path)
	// Counted, not slept: the refusal comes after the lock's few short
	// retries, not after waiting for the holder to go.
	defer func(w func(time.Duration)) { lockWait = w }(lockWait)
	var waited, most time.Duration
	lockWait = func(d time.Duration) { waited += d }
	for _, r := range lockRetries {
		most += r * time.Millisecond
	}
	_, err := Listen(path)
	if !errors.Is(err, ErrServerRunning) {
		t.Fatalf("second Listen = %v; want ErrServerRunning", err)
	}
	if waited > most {
		t.Errorf("second Listen waited %v between tries; want at most the retries' %v", waited, most)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%s)", err, want)
	}
	// The first listener is untouched.
	dialAccept(t, l)
	l.Close()
	l2 := listenT(t, path)
	dialAccept(t, l2)
}

func TestListenRefusesNonSocket(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "f.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("Listen over a regular file = %v; want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("file changed to %q", b)
	}
	// The failed Listen released the lock and left no temporary file.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Fatalf("directory holds %v; want the file and the lock file", ents)
	}
	os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("Listen over a directory = %v; want ErrNotSocket", err)
	}
}

func TestListenInsecureDir(t *testing.T) {
	checkFDLeaks(t)
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702, 0o1777} {
		path := tempSockPath(t, "i.sock")
		if err := os.Chmod(filepath.Dir(path), mode); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(path)
		if !errors.Is(err, ErrInsecureDir) {
			t.Errorf("Listen in a %v directory = %v; want ErrInsecureDir", mode, err)
		} else if !strings.Contains(err.Error(), filepath.Dir(path)) {
			t.Errorf("error %q does not name the directory", err)
		}
	}
	// /tmp itself is world-writable.
	if _, err := Listen(filepath.Join(os.TempDir(), "busd-test.sock")); !errors.Is(err, ErrInsecureDir) {
		t.Errorf("Listen in %s = %v; want ErrInsecureDir", os.TempDir(), err)
	}
	// A directory someone else owns.
	path := tempSockPath(t, "o.sock")
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Dir(path), 4242, 4242); err != nil {
			t.Fatal(err)
		}
	} else {
		path = "/busd-test.sock" // owned by root, not by us
	}
	if _, err := Listen(path); !errors.Is(err, ErrInsecureDir) {
		t.Errorf("Listen in a directory owned by another user = %v; want ErrInsecureDir", err)
	}
}

func TestPathLength(t *testing.T) {
	checkFDLeaks(t)
	dir := filepath.Dir(tempSockPath(t, "x"))
	pad := func(n int) string { // a path of exactly n bytes in dir
		return dir + "/" + strings.Repeat("p", n-len(dir)-1)
	}
	long := pad(maxPathLen + 1)
	_, err := Listen(long)
	if !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("Listen(%d bytes) = %v; want ErrPathTooLong", len(long), err)
	}
	for _, want := range []string{long, "108 bytes", "limit is 107"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Dial(context.Background(), long); !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("Dial(%d bytes) = %v; want ErrPathTooLong", len(long), err)
	}
	// Exactly sun_path fits; the temporary name falls back to a short one.
	l := listenT(t, pad(maxPathLen))
	dialAccept(t, l)
}

func TestCloseRemovesOnlyItsOwnSocket(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "r.sock")
	l := listenT(t, path)

	// Someone replaces the socket while l is running (an operator, or a
	// server that ignores the lock). l.Close must leave it alone.
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: path + ".x", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	other.SetUnlinkOnClose(false)
	defer other.Close()
	if err := os.Rename(path+".x", path); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Close removed a socket it did not create: %v", err)
	}
	os.Remove(path)

	// A successor publishes its socket; a repeated Close of the
	// predecessor must not remove it.
	l2 := listenT(t, path)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("second Close of the old listener removed the successor's socket: %v", err)
	}
	dialAccept(t, l2)
}

// TestSocketAppearsOnlyWhenAccepting watches the path while listeners come
// and go: whenever the socket file exists it must already accept
// connections and have its final mode.
func TestSocketAppearsOnlyWhenAccepting(t *testing.T) {
	checkFDLeaks(t)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := tempSockPath(t, "w.sock")
	for i := range 30 {
		seen := make(chan error, 1)
		go func() { seen <- firstSight(path) }()
		l, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		err = <-seen
		l.Close()
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
}

// firstSight spins until path exists, then checks its mode and connects.
func firstSight(path string) error {
	deadline := time.Now().Add(10 * time.Second)
	var st unix.Stat_t
	for unix.Lstat(path, &st) != nil {
		if time.Now().After(deadline) {
			return errors.New("socket never appeared")
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o7777 != 0o600 {
		return fmt.Errorf("socket appeared with mode %o", st.Mode)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("socket appeared but connect failed: %w", err)
	}
	return nil
}

func TestDialErrors(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "n.sock")
	_, err := Dial(context.Background(), path)
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Dial(no socket) = %v; want ENOENT", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Path != path {
		t.Fatalf("Dial error %#v is not an *OpError naming dial and the path", err)
	}
	listenT(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial(cancelled ctx) = %v; want context.Canceled", err)
	}
}

func TestNetListener(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "a.sock")
	l := listenT(t, path, WithConnOptions(WithMaxRecvFDs(1)))
	var nl net.Listener = l.NetListener()
	if nl.Addr().String() != path {
		t.Fatalf("Addr = %v", nl.Addr())
	}
	client, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := nl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	server, ok := nc.(*Conn)
	if !ok {
		t.Fatalf("Accept returned %T; want *Conn", nc)
	}
	// WithConnOptions reached the accepted Conn: two fds overflow it.
	_, w := pipeFDs(t)
	if _, err := client.WriteWithFDs([]byte("x"), []int{w, w}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, ErrFDsTruncated) {
		t.Fatalf("Read = %v; want ErrFDsTruncated", err)
	}
	nl.Close()
	if _, err := nl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v; want net.ErrClosed", err)
	}
}

func TestLockPath(t *testing.T) {
	for in, want := range map[string]string{
		"/run/busd/bus.sock": "/run/busd/bus.lock",
		"/run/busd/bus":      "/run/busd/bus.lock",
		"rel.sock":           "rel.lock",
	} {
		if got := lockPath(in); got != want {
			t.Errorf("lockPath(%q) = %q; want %q", in, got, want)
		}
	}
}

// A symbolic link to a directory is refused even when the directory it
// leads to is safe: whoever owns the link chooses where it leads.
func TestListenRefusesSymlinkedDir(t *testing.T) {
	checkFDLeaks(t)
	real := filepath.Dir(tempSockPath(t, "r.sock"))
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(filepath.Join(link, "s.sock"))
	if !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Listen behind a symbolic link = %v; want ErrInsecureDir naming the link", err)
	}
}

func TestCheckDirOwners(t *testing.T) {
	dir := t.TempDir()
	me := os.Geteuid()
	if err := CheckDir(dir, me); err != nil {
		t.Fatalf("CheckDir of our own 0700 directory: %v", err)
	}
	if err := CheckDir(dir, me+1, me+2); !errors.Is(err, ErrInsecureDir) ||
		!strings.Contains(err.Error(), fmt.Sprintf("owner uid %d; want owner uid %d or %d", me, me+1, me+2)) {
		t.Fatalf("CheckDir with other owners = %v; want ErrInsecureDir naming the owner", err)
	}
	if err := CheckDir(filepath.Join(dir, "missing"), me); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("CheckDir of a missing directory = %v; want fs.ErrNotExist", err)
	}
}
