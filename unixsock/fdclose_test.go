package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// closerLog is an FD closer that keeps what it is handed, checking on the
// way that the Conn did not close any of it and holds none of its locks.
type closerLog struct {
	t     *testing.T
	c     *Conn
	want  fileID // what every handed descriptor must be
	calls [][]int
}

func (l *closerLog) close(fds []int) {
	for _, fd := range fds {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			l.t.Errorf("handed fd %d is not open: %v", fd, err)
		} else if (fileID{dev: st.Dev, ino: st.Ino}) != l.want {
			l.t.Errorf("handed fd %d is not the descriptor sent", fd)
		}
	}
	// These take fdMu, rmu and closeOnce: they would hang if the Conn
	// called the closer holding any of them.
	l.c.QueuedFDs()
	l.c.SetFDCloser(l.close)
	l.c.Read(nil)
	l.c.Close()
	l.calls = append(l.calls, fds)
}

// closeAll closes everything handed over, checking first that the Conn
// has not closed it since.
func (l *closerLog) closeAll() {
	for _, fds := range l.calls {
		for _, fd := range fds {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				l.t.Errorf("handed fd %d closed behind the closer's back: %v", fd, err)
			}
			unix.Close(fd)
		}
	}
}

// withTimeout runs f and ends the test binary if f does not return in
// time, which here means a closer deadlocked on the Conn. Failing the test
// or panicking would not do: the test's cleanup (which testing runs on a
// panic too) would then hang on the same lock.
func withTimeout(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		stacks := make([]byte, 1<<20)
		stacks = stacks[:runtime.Stack(stacks, true)]
		fmt.Fprintf(os.Stderr, "--- FAIL: %s: %s did not return within 5s: the closer deadlocked on the Conn\n%s\n", t.Name(), what, stacks)
		os.Exit(1)
	}
}

func TestFDCloserGetsUnclaimedAtClose(t *testing.T) {
	checkFDLeaks(t)
	b, bud, w := budgetedRead(t, 3)
	log := &closerLog{t: t, c: b, want: fstatID(t, w)}
	b.SetFDCloser(log.close)
	taken, err := b.TakeFDs(1)
	if err != nil {
		t.Fatal(err)
	}
	queued := slices.Clone(b.fds)
	withTimeout(t, "Close", func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	if len(log.calls) != 1 || !slices.Equal(log.calls[0], queued) {
		t.Fatalf("closer got %v; want one call with the unclaimed %v", log.calls, queued)
	}
	b.Close() // only the first Close hands anything over
	if len(log.calls) != 1 {
		t.Fatalf("closer called %d times after a second Close; want 1", len(log.calls))
	}
	// The closer owns the charge: the Conn released none of it.
	bud.check(t, 3)
	log.closeAll()
	unix.Close(taken[0])
	bud.ReleaseFDs(3)
	bud.check(t, 0)
}

// TestFDCloserGetsFailedReads: the descriptors of a truncated read, and
// those that come with a control message the Conn does not accept, go to
// the closer, still open.
func TestFDCloserGetsFailedReads(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max, send int // the Conn's limit, the descriptors sent
		setup     func(t *testing.T, c *Conn)
		want      error
	}{
		{"truncated", 3, 5, nil, ErrFDsTruncated},
		// With SO_PASSCRED every read also carries SCM_CREDENTIALS, which
		// leaves room in the control buffer for the descriptors.
		{"bad control message", DefaultMaxRecvFDs, 2, func(t *testing.T, c *Conn) {
			var serr error
			if err := c.rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
			}); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
		}, ErrBadControlMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFDLeaks(t)
			a, b := socketPair(t, WithMaxRecvFDs(tc.max))
			_, w := pipeFDs(t)
			if tc.setup != nil {
				tc.setup(t, b)
			}
			log := &closerLog{t: t, c: b, want: fstatID(t, w)}
			b.SetFDCloser(log.close)
			send := slices.Repeat([]int{w}, tc.send)
			if _, err := a.WriteWithFDs([]byte("x"), send); err != nil {
				t.Fatal(err)
			}
			withTimeout(t, "Read", func() {
				if _, err := b.Read(make([]byte, 1)); !errors.Is(err, tc.want) {
					t.Errorf("Read error = %v; want %v", err, tc.want)
				}
			})
			got := 0
			for _, fds := range log.calls {
				got += len(fds)
			}
			if want := min(tc.send, tc.max); len(log.calls) != 1 || got != want {
				t.Fatalf("closer got %v; want one call with the %d installed", log.calls, want)
			}
			if q := b.QueuedFDs(); q != 0 {
				t.Fatalf("QueuedFDs() = %d; want 0", q)
			}
			log.closeAll()
		})
	}
}

// Without a closer the descriptors a Close gives up are closed inline, as
// before, and their charge released.
func TestNoFDCloserClosesInline(t *testing.T) {
	checkFDLeaks(t)
	b, bud, _ := budgetedRead(t, 2)
	log := &closerLog{t: t, c: b}
	b.SetFDCloser(log.close)
	b.SetFDCloser(nil)
	queued := slices.Clone(b.fds)
	b.Close()
	for _, fd := range queued {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("queued fd %d still open after Close", fd)
		}
	}
	if len(log.calls) != 0 {
		t.Fatalf("a removed closer was called: %v", log.calls)
	}
	bud.check(t, 0)
	if _, err := b.TakeFDs(1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("TakeFDs after Close = %v; want net.ErrClosed", err)
	}
}
