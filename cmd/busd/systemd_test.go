package main

// busd under systemd: readiness and stopping reported through
// NOTIFY_SOCKET, and sockets passed by socket activation served and left
// in place.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// notifySocket listens on a Unix datagram socket at addr, as systemd
// does for NOTIFY_SOCKET; it is closed when the test ends.
func notifySocket(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectNotify reads the next datagram, which must be want, within the
// watchdog.
func expectNotify(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(watchdog))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("waiting for %s: %v", want, err)
	}
	if got := string(buf[:n]); got != want {
		t.Fatalf("busd notified %q; want %q", got, want)
	}
}

// With NOTIFY_SOCKET set (an abstract address here), busd sends READY=1
// once its socket is published, and STOPPING=1 when told to stop.
func TestNotifyReadyAndStopping(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("@busd-notify-%d-%d", os.Getpid(), rand.Uint64())
	ns := notifySocket(t, addr)
	b := bustest.StartWith(t, binDir, bustest.Options{Env: []string{"NOTIFY_SOCKET=" + addr}})
	expectNotify(t, ns, "READY=1")
	b.Connect(t, "ready").Sync() // ready means served
	b.Signal(t, syscall.SIGTERM)
	expectNotify(t, ns, "STOPPING=1")
	if err := b.WaitExit(t, watchdog); err != nil {
		t.Fatalf("busd exited with %v; want 0", err)
	}
}

// Given a listening socket by socket activation, busd serves it, takes
// neither the socket's path nor its listening state with it when it
// stops: systemd's copy goes on queueing connections for the next busd.
func TestActivatedSocketServedAndLeftInPlace(t *testing.T) {
	t.Parallel()
	tmp, err := os.MkdirTemp("", "act")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	path := filepath.Join(tmp, "default.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	t.Cleanup(func() { ln.Close() })
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	notifyPath := filepath.Join(tmp, "notify")
	ns := notifySocket(t, notifyPath)
	b := bustest.StartWith(t, binDir, bustest.Options{Activate: []*os.File{f}, Env: []string{"NOTIFY_SOCKET=" + notifyPath}})
	b.WaitLog(t, "socket="+path, watchdog)
	expectNotify(t, ns, "READY=1")
	c, err := bustest.DialRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("activated"); err != nil {
		t.Fatalf("handshake on the activated socket: %v", err)
	}
	if err := pingPong(c, 1); err != nil {
		t.Fatal(err)
	}
	b.Signal(t, syscall.SIGTERM)
	expectNotify(t, ns, "STOPPING=1")
	if err := b.WaitExit(t, watchdog); err != nil {
		t.Fatalf("busd exited with %v; want 0", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("after busd stopped the activated socket is %v, %v; want it in place", fi, err)
	}
	// Still listening: a connection waits in the backlog for the next
	// busd, as systemd would start it.
	next, err := bustest.DialRaw(path)
	if err != nil {
		t.Fatalf("dialling the activated socket after busd stopped: %v; want it still listening", err)
	}
	next.Close()
}
