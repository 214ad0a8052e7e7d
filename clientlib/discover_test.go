package clientlib

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus"
)

// tempBusDir returns a fresh private directory, removed when the test
// ends; short, for sun_path.
func tempBusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serveAt runs a broker on path (making its directory, whose parent must
// exist) until it is shut down or the test ends.
func serveAt(t *testing.T, path string) *bus.Server { return serveWith(t, path, nil) }

// staleSocket leaves a socket file at path that nothing listens on, as a
// killed broker does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

// whenWaiting returns a channel closed once a Connect to path has set its
// watch and is waiting for the bus.
func whenWaiting(t *testing.T, path string) <-chan struct{} {
	t.Helper()
	waiting := make(chan struct{})
	hook := func(p string) {
		if p == path {
			close(waiting)
		}
	}
	testHookWaiting.Store(&hook)
	t.Cleanup(func() { testHookWaiting.Store(nil) })
	return waiting
}

type connResult struct {
	c   *Conn
	err error
}

// connectAsync starts Connect to path and returns where its result goes.
func connectAsync(t *testing.T, path string, opts ...Option) <-chan connResult {
	t.Helper()
	ctx := testCtx(t)
	done := make(chan connResult, 1)
	go func() {
		c, err := Connect(ctx, append([]Option{WithSocket(path)}, opts...)...)
		done <- connResult{c, err}
	}()
	return done
}

// await waits for ch within the test's watchdog.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// Connect started before its bus waits for it, whether the bus's
// directory exists, is made by the broker, or needs a parent made first,
// and whether a stale socket is in the way.
func TestConnectWaitsForBus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, base, path string) // before Connect
		then  func(t *testing.T, base string)       // once Connect waits, before the bus starts
	}{
		{"dir exists", func(t *testing.T, base, path string) { mkdir(t, filepath.Dir(path)) }, nil},
		{"dir made by the broker", nil, nil},
		{"parent made later", nil, func(t *testing.T, base string) { mkdir(t, filepath.Join(base, "p")) }},
		{"stale socket", func(t *testing.T, base, path string) {
			mkdir(t, filepath.Dir(path))
			staleSocket(t, path)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tempBusDir(t)
			path := filepath.Join(base, "d", "w.sock")
			if tc.then != nil {
				path = filepath.Join(base, "p", "d", "w.sock")
			}
			if tc.setup != nil {
				tc.setup(t, base, path)
			}
			waiting := whenWaiting(t, path)
			done := connectAsync(t, path)
			select {
			case <-waiting:
			case r := <-done:
				t.Fatalf("Connect returned before the bus was up: %v", r.err)
			case <-time.After(10 * time.Second):
				t.Fatal("Connect did not start waiting")
			}
			if tc.then != nil {
				tc.then(t, base)
			}
			serveAt(t, path)
			r := await(t, done, "Connect")
			if r.err != nil {
				t.Fatalf("Connect: %v", r.err)
			}
			defer r.c.Close()
			if err := r.c.Flush(testCtx(t)); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// WithNoWait fails at once, matching ErrNoBus and why: no socket, or one
// that refuses.
func TestConnectNoWait(t *testing.T) {
	path := filepath.Join(tempBusDir(t), "n.sock")
	ctx := testCtx(t)
	_, err := Connect(ctx, WithSocket(path), WithNoWait())
	if !errors.Is(err, ErrNoBus) || !errors.Is(err, syscall.ENOENT) || ctx.Err() != nil {
		t.Fatalf("no socket: Connect = %v (ctx %v); want ErrNoBus and ENOENT at once", err, ctx.Err())
	}
	staleSocket(t, path)
	_, err = Connect(ctx, WithSocket(path), WithNoWait())
	if !errors.Is(err, ErrNoBus) || !errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
		t.Fatalf("stale socket: Connect = %v (ctx %v); want ErrNoBus and ECONNREFUSED at once", err, ctx.Err())
	}
}

// A wait that reaches the context's deadline matches ErrNoBus, the
// deadline, and what the last attempt found; the watch is gone.
func TestConnectDeadline(t *testing.T) {
	base := tempBusDir(t)
	stale := filepath.Join(base, "s.sock")
	staleSocket(t, stale)
	for _, tc := range []struct {
		path string
		last error
	}{
		{filepath.Join(base, "none", "x.sock"), syscall.ENOENT},
		{stale, syscall.ECONNREFUSED}, // retried with backoff until the deadline
	} {
		before := countResources(t)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := Connect(ctx, WithSocket(tc.path))
		cancel()
		// On a loaded machine the deadline may pass during the first
		// dial, before it has failed: the error is still no bus.
		if !errors.Is(err, ErrNoBus) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: Connect = %v; want ErrNoBus and DeadlineExceeded", tc.path, err)
		}
		settles(t, before)
		// Ended once it has dialled and waits: the error names why the
		// dial failed.
		waiting := whenWaiting(t, tc.path)
		ctx, cancel = context.WithCancel(context.Background())
		go func() { <-waiting; cancel() }()
		_, err = Connect(ctx, WithSocket(tc.path))
		cancel()
		if !errors.Is(err, ErrNoBus) || !errors.Is(err, context.Canceled) || !errors.Is(err, tc.last) {
			t.Fatalf("%s: Connect = %v; want ErrNoBus, Canceled and %v", tc.path, err, tc.last)
		}
		settles(t, before)
	}
}

// A missing directory's trust is checked once it appears: a directory
// others may write to is refused, not waited in.
func TestConnectWaitChecksDir(t *testing.T) {
	base := tempBusDir(t)
	path := filepath.Join(base, "d", "w.sock")
	waiting := whenWaiting(t, path)
	done := connectAsync(t, path)
	await(t, waiting, "Connect to wait")
	mkdir(t, filepath.Dir(path))
	if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	staleSocket(t, path) // an event in the directory, so that Connect looks
	r := await(t, done, "Connect")
	if !errors.Is(r.err, ErrUntrustedBus) {
		t.Fatalf("Connect = %v; want ErrUntrustedBus", r.err)
	}
}

// waitForSocket returns once a socket file is at the path, made after the
// wait began, and with ctx's error if ctx ends first.
func TestWaitForSocket(t *testing.T) {
	base := tempBusDir(t)
	path := filepath.Join(base, "a", "b", "s.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := waitForSocket(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no socket: waitForSocket = %v; want DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- waitForSocket(testCtx(t), path) }()
	// Whether the wait has set its watch yet or not, it must see these.
	mkdir(t, filepath.Join(base, "a"))
	mkdir(t, filepath.Join(base, "a", "b"))
	if err := os.WriteFile(filepath.Join(base, "a", "b", "s.sock"+".not"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	staleSocket(t, path)
	if err := await(t, done, "waitForSocket"); err != nil {
		t.Fatalf("waitForSocket = %v", err)
	}
}

// resources counts what discovery may leave behind: open descriptors,
// inotify instances among them, and goroutines in fsnotify or Watch.
type resources struct{ fds, inotify, goroutines int }

func countResources(t *testing.T) resources {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var r resources
	for _, e := range ents {
		r.fds++
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target == "anon_inode:inotify" {
			r.inotify++
		}
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("fsnotify")) || bytes.Contains(g, []byte("clientlib.(*busWatch)")) {
			r.goroutines++
		}
	}
	return r
}

// settles waits until what discovery holds is back to before: goroutines
// that were told to end may still be on their way out. The deadline only
// fails the test.
func settles(t *testing.T, before resources) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := countResources(t)
		if now == before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %+v, before %+v", now, before)
		}
		runtime.Gosched()
	}
}

// waitForSocket returns nil once a socket file exists at path, watching
// with a dirWatch alone (no dial, no trust checks): a test of dirWatch
// following the directory down as it is made. It returns ctx.Err() if ctx
// ends first.
func waitForSocket(ctx context.Context, path string) error {
	if isSocket(path) {
		return nil
	}
	dw, err := newDirWatch(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dw.close()
	for !isSocket(path) {
		if err := dw.waitPath(ctx, path, nil); err != nil {
			return err
		}
	}
	return nil
}

// pastDeadline is a context whose deadline has passed while its timer has
// not yet fired, as a loaded machine sees it for a moment: Err is still nil.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A dial that finds the deadline passed fails with "i/o timeout" before
// ctx.Err() says so; Connect still says no bus and the deadline.
func TestConnectDeadlinePassedBeforeTimer(t *testing.T) {
	path := filepath.Join(tempBusDir(t), "s.sock")
	staleSocket(t, path)
	_, err := Connect(pastDeadline{context.Background()}, WithSocket(path))
	if !errors.Is(err, ErrNoBus) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v; want ErrNoBus and DeadlineExceeded", err)
	}
}
