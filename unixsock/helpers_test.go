package unixsock

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv tells a re-executed test binary which child role to play.
const helperEnv = "BUSD_UNIXSOCK_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "" {
		// Let the runtime open its poller descriptors before any test
		// counts descriptors.
		if a, b, err := Socketpair(); err == nil {
			a.Close()
			b.Close()
		}
	}
	os.Exit(m.Run())
}

// checkFDLeaks records the open descriptors now and fails the test if any
// new one is still open when the test's cleanups have run. Call it first, so
// its cleanup runs last. Closing a socket another goroutine is blocked on
// finishes asynchronously, so it retries, for 10 seconds at most however
// slow the machine.
func checkFDLeaks(t testing.TB) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		var leaked []int
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			leaked = leaked[:0]
			for _, fd := range openFDs(t) {
				if !slices.Contains(before, fd) {
					leaked = append(leaked, fd)
				}
			}
			if len(leaked) == 0 {
				return
			}

			time.Sleep(20 * time.Millisecond)
		}
		for _, fd := range leaked {
			target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			t.Errorf("leaked fd %d -> %s", fd, target)
		}
	})
}

func openFDs(t testing.TB) []int {
	t.Helper()
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	self := int(d.Fd())
	var fds []int
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd != self {
			fds = append(fds, fd)
		}
	}
	return fds
}

// ownCred returns the credentials a peer running as this process has,
// with pid: this process's uid, gid and supplementary groups. t may be nil
// in a child process, which then panics on a failure.
func ownCred(t testing.TB, pid int) Cred {
	groups, err := os.Getgroups()
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatal(err)
	}
	c := Cred{PID: pid, UID: os.Getuid(), GID: os.Getgid()}
	for _, g := range groups {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
}

// sameCred reports whether a and b are the same credentials, groups
// included (in order: the kernel keeps them sorted).
func sameCred(a, b Cred) bool {
	return a.PID == b.PID && a.UID == b.UID && a.GID == b.GID && slices.Equal(a.Groups, b.Groups)
}

// watchdog closes cs (waking any call blocked on them) and fails the test if
// the test is still running after d.
func watchdog(t testing.TB, d time.Duration, cs ...io.Closer) {
	t.Helper()
	tm := time.AfterFunc(d, func() {
		t.Errorf("watchdog: test still running after %v", d)
		for _, c := range cs {
			c.Close()
		}
	})
	t.Cleanup(func() { tm.Stop() })
}

// dialFromChild is how a child process reaches its parent's listener at
// path: within 10 seconds, and with a 10-second deadline on the Conn, so
// that a parent that fails cannot leave the child waiting for good.
func dialFromChild(path string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, nil
}

// socketPair returns a closed-on-cleanup Conn pair with a watchdog.
func socketPair(t testing.TB, opts ...ConnOption) (*Conn, *Conn) {
	t.Helper()
	a, b, err := Socketpair(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	watchdog(t, 10*time.Second, a, b)
	return a, b
}

// tempSockPath returns a socket path in a fresh private directory. The
// directory comes from os.MkdirTemp("", "") rather than t.TempDir, whose
// names embed the test name and can overflow sun_path.
func tempSockPath(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir + "/" + name
}

// pipeFDs returns a pipe, closed on cleanup.
func pipeFDs(t testing.TB) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

func fstatID(t testing.TB, fd int) fileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat %d: %v", fd, err)
	}
	return fileID{dev: st.Dev, ino: st.Ino}
}

// The tests and benchmarks use the framing the protocol above will: a
// 4-byte little-endian body length, a 1-byte fd count, then the body.

const frameHeader = 5

func appendFrame(dst []byte, nfds int, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, byte(nfds))
	return append(dst, body...)
}

// readFrame reads one frame from br, returning its fd count and body (valid
// until the next read).
func readFrame(br *bufio.Reader, buf []byte) (int, []byte, error) {
	hdr, err := br.Peek(frameHeader)
	if err != nil {
		return 0, nil, err
	}
	n := int(binary.LittleEndian.Uint32(hdr))
	nfds := int(hdr[4])
	if _, err := br.Discard(frameHeader); err != nil {
		return 0, nil, err
	}
	if n > len(buf) {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds buffer", n)
	}
	if _, err := io.ReadFull(br, buf[:n]); err != nil {
		return 0, nil, err
	}
	return nfds, buf[:n], nil
}
