package clientlib

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/unixsock"
)

// impostor listens at dir/t.sock, as a process that could write to dir
// would, and reports whether anyone connected to it.
func impostor(t *testing.T, dir string) (path string, connected func() bool) {
	t.Helper()
	path = filepath.Join(dir, "t.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return path, func() bool {
		ln.(*net.UnixListener).SetDeadline(time.Now())
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		return err == nil
	}
}

// A socket in a directory others may write to, or another user owns,
// could be anyone's: Connect refuses it before dialing, naming the
// directory and what is wrong with it.
func TestConnectRefusesAnUntrustedDirectory(t *testing.T) {
	cases := map[string]func(dir string) error{
		"writable by others": func(dir string) error { return os.Chmod(dir, 0o777) },
	}
	if os.Geteuid() == 0 { // only root can give a directory away
		cases["owned by another user"] = func(dir string) error { return os.Chown(dir, 4242, 4242) }
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path, connected := impostor(t, dir)
			if err := spoil(dir); err != nil {
				t.Fatal(err)
			}
			_, err := Connect(testCtx(t), WithSocket(path))
			if !errors.Is(err, ErrUntrustedBus) || !errors.Is(err, unixsock.ErrInsecureDir) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Connect = %v; want ErrUntrustedBus and ErrInsecureDir naming %s", err, dir)
			}
			if connected() {
				t.Fatal("the client connected to the impostor")
			}
		})
	}
}

// A socket not there yet, in a directory anyone may write to (as /tmp):
// the refusal says what is wrong once, that no socket is there, and what
// to use instead; it does not wait for one.
func TestConnectRefusesASharedDirectoryBeforeWaiting(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	_, err := Connect(testCtx(t), WithSocket(filepath.Join(dir, "none.sock")))
	msg := fmt.Sprint(err)
	if !errors.Is(err, ErrUntrustedBus) || !errors.Is(err, unixsock.ErrInsecureDir) ||
		!strings.Contains(msg, "mode 1777: other users may write to it") || !strings.Contains(msg, "no socket is there yet") ||
		!strings.Contains(msg, "directory only its user may write to") ||
		strings.Contains(msg, "unixsock:") || strings.Count(msg, "untrusted bus") != 1 {
		t.Fatalf("Connect = %q; want one ErrUntrustedBus naming the mode, the missing socket and what to do", msg)
	}
	if uids := (&options{trusted: []int{0, os.Geteuid(), 7}}).trustedUIDs(); len(uids) != len(slices.Compact(slices.Sorted(slices.Values(uids)))) {
		t.Errorf("trustedUIDs = %v: a uid twice", uids)
	}
}

// A bus reached through a symbolic link is refused, even when the link
// leads to a real bus: whoever owns the link chooses where it leads.
func TestConnectRefusesASymlinkedDirectory(t *testing.T) {
	path, _ := startBus(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(path), link); err != nil {
		t.Fatal(err)
	}
	_, err := Connect(testCtx(t), WithSocket(filepath.Join(link, filepath.Base(path))))
	if !errors.Is(err, ErrUntrustedBus) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Connect through a symbolic link = %v; want ErrUntrustedBus naming the link", err)
	}
	connect(t, path) // the bus itself, by its own path
}

// The broker's credentials come from the kernel (SO_PEERCRED); a broker
// whose uid is not trusted is refused, and WithTrustedUIDs trusts it.
func TestBrokerOfAnUntrustedUser(t *testing.T) {
	path, _ := startBus(t)
	sock, err := unixsock.Dial(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	broker := sock.Peer().UID
	err = checkBroker(sock, []int{broker + 1})
	if !errors.Is(err, ErrUntrustedBus) || !strings.Contains(err.Error(), "runs as uid") {
		t.Fatalf("checkBroker with uid %d untrusted = %v; want ErrUntrustedBus", broker, err)
	}
	var o options
	if err := WithTrustedUIDs(broker + 7)(&o); err != nil {
		t.Fatal(err)
	}
	if err := checkBroker(sock, o.trustedUIDs()); err != nil {
		t.Fatalf("checkBroker of a broker run as us (uid %d): %v", broker, err)
	}
	if err := WithTrustedUIDs(-1)(&o); err == nil {
		t.Fatal("WithTrustedUIDs(-1) accepted")
	}
}
