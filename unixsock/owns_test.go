package unixsock

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawFD returns the descriptor of sc without File.Fd's side effect of
// making a socket's shared open file description blocking. It stays valid
// while sc is open.
func rawFD(sc syscall.Conn) (int, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	err = rc.Control(func(u uintptr) { fd = int(u) })
	return fd, err
}

func fileFD(t testing.TB, f *os.File) int {
	t.Helper()
	fd, err := rawFD(f)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// connFD returns a duplicate of c's socket, as a peer passing it would
// deliver it, closed on cleanup.
func connFD(t testing.TB, c *Conn) int {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return fileFD(t, f)
}

// newSocket returns a new socket, closed on cleanup.
func newSocket(t testing.TB, domain, typ int) int {
	t.Helper()
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// rawConnect returns a socket connected to path that nobody accepts.
func rawConnect(t testing.TB, path string) int {
	t.Helper()
	fd := newSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestListenerOwns(t *testing.T) {
	checkFDLeaks(t)
	l := listenT(t, tempSockPath(t, "o.sock"))
	other := listenT(t, tempSockPath(t, "o.sock"))
	// What makes matching by path wrong: Listen bound the socket under a
	// temporary name, and that is what peers see.
	if l.bound == l.Path() {
		t.Fatalf("listener bound to its path %q; want a temporary name", l.bound)
	}
	client, server := dialAccept(t, l)
	otherClient, _ := dialAccept(t, other)
	pair, _ := socketPair(t)
	r, _ := pipeFDs(t)
	reg, err := os.CreateTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(reg.Name())
	defer reg.Close()
	mfd := memfdPool(t, 1)[0]

	for _, tc := range []struct {
		name string
		fd   int
		want bool
	}{
		{"dialled client", connFD(t, client), true},
		{"client not yet accepted", rawConnect(t, l.Path()), true},
		{"accepted server end", connFD(t, server), true},
		{"the listener, duplicated", listenerFD(t, l), true},
		{"client of another listener", connFD(t, otherClient), false},
		{"another listener", listenerFD(t, other), false},
		{"socketpair end", connFD(t, pair), false},
		{"unbound Unix socket", newSocket(t, unix.AF_UNIX, unix.SOCK_STREAM), false},
		{"UDP socket", newSocket(t, unix.AF_INET, unix.SOCK_DGRAM), false},
		{"pipe", r, false},
		{"regular file", int(reg.Fd()), false},
		{"memfd", mfd, false},
		{"not a descriptor", -1, false},
	} {
		if got := l.Owns(tc.fd); got != tc.want {
			t.Errorf("Owns(%s) = %t; want %t", tc.name, got, tc.want)
		}
	}
	// A socket connected to l is still l's after l is closed.
	fd := connFD(t, client)
	l.Close()
	if !l.Owns(fd) {
		t.Errorf("Owns(dialled client) after Close = false; want true")
	}
}

// listenerFD returns a duplicate of l's socket, closed on cleanup.
func listenerFD(t testing.TB, l *Listener) int {
	t.Helper()
	f, err := l.ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return fileFD(t, f)
}

// TestActivatedListenerOwns runs Owns in a socket-activated child, on a
// socket bound to a name other than the one it is reached by (as a socket
// renamed into place after bind would be).
func TestActivatedListenerOwns(t *testing.T) {
	if os.Getenv(helperEnv) == "activation-owns" {
		exitHelper(activatedOwnsChild())
	}
	checkFDLeaks(t)
	dir := tempSockPath(t, "")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dir + "tmp.sock", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	if err := os.Rename(dir+"tmp.sock", dir+"a.sock"); err != nil {
		t.Fatal(err)
	}
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := helperCmd(t, "TestActivatedListenerOwns", "activation-owns",
		"LISTEN_FDS=1", "BUSD_TEST_SOCK="+dir+"a.sock")
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func activatedOwnsChild() error {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	ls, err := ActivationListeners()
	if err != nil || len(ls) != 1 {
		return fmt.Errorf("ActivationListeners() = %v, %v; want one listener", ls, err)
	}
	l := ls[0]
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, os.Getenv("BUSD_TEST_SOCK"))
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := c.File()
	if err != nil {
		return err
	}
	defer f.Close()
	a, b, err := Socketpair()
	if err != nil {
		return err
	}
	defer a.Close()
	defer b.Close()
	pf, err := a.File()
	if err != nil {
		return err
	}
	defer pf.Close()
	for _, tc := range []struct {
		name string
		sc   syscall.Conn
		want bool
	}{
		{"client dialled by path", f, true},
		{"the listener", l.ln, true},
		{"socketpair end", pf, false},
	} {
		fd, err := rawFD(tc.sc)
		if err != nil {
			return err
		}
		if got := l.Owns(fd); got != tc.want {
			return fmt.Errorf("Owns(%s) = %t; want %t (bound to %q)", tc.name, got, tc.want, l.bound)
		}
	}
	return nil
}
