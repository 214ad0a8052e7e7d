package activation

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childReport waits for the report a "report" child logs, and decodes it.
func childReport(t *testing.T, rec *recorder, name string) report {
	t.Helper()
	line := rec.wait(t, "service output", "service", name, "stream", "stdout")
	js, ok := strings.CutPrefix(line.attrs["line"], "REPORT ")
	var r report
	if !ok || json.Unmarshal([]byte(js), &r) != nil {
		t.Fatalf("not a report: %v", line)
	}
	return r
}

// A service inherits nothing of busd's: its environment is PATH, HOME,
// USER, LOGNAME, its file's env lines, BUSD_SOCKET and BUSD_SERVICE; its
// stdin is /dev/null, it leads a session of its own in /, and it has no
// descriptor but 0, 1 and 2, not even one busd holds without
// close-on-exec.
func TestServiceInheritsNothing(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "env.test", childService(t, "env.test", "report", "PATH=/opt/bin:/usr/bin", "LANG=C",
		"GODEBUG=containermaxprocs=0")) // else its runtime keeps cgroup files open
	var p [2]int
	if err := unix.Pipe2(p[:], 0); err != nil { // no O_CLOEXEC
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	a, rec := start(t, Config{Dir: dir, Socket: "/run/user/1/busd/default.sock"})
	fails := newFailures()
	if !a.Activate("env.test", fails.fn()) {
		t.Fatal("Activate: false")
	}
	r := childReport(t, rec, "env.test")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	home := me.HomeDir
	want := []string{"ACT_CHILD=report", "BUSD_SERVICE=env.test", "BUSD_SOCKET=/run/user/1/busd/default.sock",
		"GODEBUG=containermaxprocs=0", "HOME=" + home, "LANG=C", "LOGNAME=" + me.Username, "PATH=/opt/bin:/usr/bin", "USER=" + me.Username}
	slices.Sort(r.Env)
	if !slices.Equal(r.Env, want) {
		t.Errorf("environment:\n%q\nwant\n%q", r.Env, want)
	}
	if len(r.FDs) != 3 || !strings.HasPrefix(r.FDs[0], "0 -> /dev/null") ||
		!strings.HasPrefix(r.FDs[1], "1 -> pipe:") || !strings.HasPrefix(r.FDs[2], "2 -> pipe:") {
		t.Errorf("descriptors %q; want only 0 (/dev/null), 1 and 2 (pipes)", r.FDs)
	}
	if r.Cwd != "/" || !r.Leader || r.Stdin != "/dev/null" {
		t.Errorf("cwd %q, session leader %v, stdin %q; want /, true, /dev/null", r.Cwd, r.Leader, r.Stdin)
	}
	// It ended (status 0) without taking its name.
	if err := fails.next(t); !errors.Is(err, ErrExitedWithoutName) {
		t.Errorf("failed(%v); want ErrExitedWithoutName", err)
	}
}

// Its stdout and stderr go to the log, a line a record tagged with the
// service's name and the stream, a line too long cut at MaxLineLen; and
// failed is called once, after the output, with the exit status.
func TestOutputLoggedThenExitStatus(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "out.test", childService(t, "out.test", "exit",
		"ACT_OUT=hello|world", "ACT_ERR=oops", "ACT_LONG=5000", "ACT_CODE=3"))
	a, rec := start(t, Config{Dir: dir})
	fails := newFailures()
	if !a.Activate("out.test", fails.fn()) {
		t.Fatal("Activate: false")
	}
	err := fails.next(t)
	var exit *exec.ExitError
	if err == nil || err.Error() != "exit status 3" || !errors.As(err, &exit) {
		t.Fatalf("failed(%v); want exit status 3, an *exec.ExitError", err)
	}
	for _, l := range []struct{ stream, line string }{{"stdout", "hello"}, {"stdout", "world"}, {"stderr", "oops"}, {"stdout", "after the long line"}} {
		if len(rec.find("service output", "service", "out.test", "stream", l.stream, "line", l.line)) != 1 {
			t.Errorf("no %s line %q logged once before failed; the log:\n%s", l.stream, l.line, rec.dump())
		}
	}
	long := rec.find("service output", "service", "out.test", "truncated", "true")
	if len(long) != 1 || long[0].attrs["line"] != strings.Repeat("x", MaxLineLen) {
		t.Errorf("the long line: %v; want it once, cut at %d bytes, truncated=true", long, MaxLineLen)
	}
	rec.wait(t, "activation failed", "service", "out.test", "err", "exit status 3")
	fails.none(t)
}

// A service that writes more than its bound loses the lines beyond it,
// and their number is logged; the clock is stopped, so no token comes
// back meanwhile.
func TestOutputRateBound(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "chatty.test", childService(t, "chatty.test", "exit", "ACT_LINES=1000"))
	now := time.Now()
	a, rec := start(t, Config{Dir: dir, clock: func() time.Time { return now }})
	fails := newFailures()
	a.Activate("chatty.test", fails.fn())
	fails.next(t)
	if n := len(rec.find("service output", "service", "chatty.test")); n != OutputBurst {
		t.Errorf("%d lines logged; want %d", n, OutputBurst)
	}
	rec.wait(t, "service output dropped", "service", "chatty.test", "lines", strconv.Itoa(1000-OutputBurst))
}

func TestKilledAndExecFailure(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "killed.test", childService(t, "killed.test", "kill"))
	writeService(t, dir, "missing.test", "name = missing.test\nexec = /nonexistent/program\n")
	a, _ := start(t, Config{Dir: dir})
	fails := newFailures()
	a.Activate("killed.test", fails.fn())
	if err := fails.next(t); err == nil || err.Error() != "signal: killed" {
		t.Errorf("killed: failed(%v); want signal: killed", err)
	}
	a.Activate("missing.test", fails.fn())
	if err := fails.next(t); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing program: failed(%v); want no such file", err)
	}
	if a.Activate("nothing.test", fails.fn()) {
		t.Error("Activate of a name without a service: true")
	}
	fails.none(t)
}

// Once the service has taken its name, its end is only logged: failed
// is not called.
func TestNoFailureAfterOwned(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	hold := fifo(t)
	writeService(t, dir, "owned.test", childService(t, "owned.test", "hold", "ACT_FIFO="+hold, "ACT_CODE=3"))
	a, rec := start(t, Config{Dir: dir})
	fails := newFailures()
	a.Activate("owned.test", fails.fn())
	rec.wait(t, "service started", "service", "owned.test")
	a.Owned("owned.test")
	release(t, hold)
	rec.wait(t, "service exited", "service", "owned.test", "status", "exit status 3")
	fails.none(t)
}

// Many Activate calls for one name at once start one process, and each
// call's failed is called once when it ends.
func TestConcurrentActivateStartsOne(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	hold := fifo(t)
	writeService(t, dir, "one.test", childService(t, "one.test", "hold", "ACT_FIFO="+hold, "ACT_CODE=4"))
	a, rec := start(t, Config{Dir: dir})
	const n = 50
	fails := newFailures()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if !a.Activate("one.test", fails.fn()) {
				t.Error("Activate: false")
			}
		})
	}
	wg.Wait()
	rec.wait(t, "service started", "service", "one.test")
	release(t, hold)
	for range n {
		if err := fails.next(t); err == nil || err.Error() != "exit status 4" {
			t.Errorf("failed(%v); want exit status 4", err)
		}
	}
	fails.none(t)
	if started := rec.find("service started", "service", "one.test"); len(started) != 1 {
		t.Errorf("%d processes started; want 1", len(started))
	}
}

// Past MaxStarting services starting at once, Activate fails the next at
// once with ErrTooManyStarting; once one of them has its name, another
// may start.
func TestStartingBound(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	holds := map[string]string{}
	for _, n := range []string{"a.test", "b.test", "c.test"} {
		holds[n] = fifo(t)
		writeService(t, dir, n, childService(t, n, "hold", "ACT_FIFO="+holds[n]))
	}
	a, rec := start(t, Config{Dir: dir, MaxStarting: 2})
	fails := newFailures()
	a.Activate("a.test", fails.fn())
	a.Activate("b.test", fails.fn())
	if !a.Activate("c.test", fails.fn()) {
		t.Fatal("Activate past the bound: false; want true, and failed")
	}
	if err := fails.next(t); !errors.Is(err, ErrTooManyStarting) || !strings.Contains(err.Error(), "(2)") {
		t.Errorf("failed(%v); want ErrTooManyStarting, naming the bound", err)
	}
	rec.wait(t, "service started", "service", "a.test")
	a.Owned("a.test")
	a.Activate("c.test", fails.fn())
	rec.wait(t, "service started", "service", "c.test")
	for _, h := range holds {
		release(t, h)
	}
	for range 2 { // b and c, not a
		if err := fails.next(t); !errors.Is(err, ErrExitedWithoutName) {
			t.Errorf("failed(%v); want ErrExitedWithoutName", err)
		}
	}
	rec.wait(t, "service exited", "service", "a.test")
	fails.none(t)
}

// Close ends every goroutine of the Activator and of its directory
// watch, without stopping the service it started, whose end it no
// longer reports. Not parallel: it counts goroutines.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	dir := servicesDir(t)
	hold := fifo(t)
	writeService(t, dir, "close.test", childService(t, "close.test", "hold", "ACT_FIFO="+hold, "ACT_OUT=bye"))
	rec := newRecorder()
	a, err := New(Config{Dir: dir, Logger: slogNew(rec)})
	if err != nil {
		t.Fatal(err)
	}
	fails := newFailures()
	a.Activate("close.test", fails.fn())
	started := rec.wait(t, "service started", "service", "close.test")
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftGoroutines(5 * time.Second); len(left) > 0 { // Close's own helper may be on its way out
		t.Fatalf("left after Close:\n%s", strings.Join(left, "\n\n"))
	}
	pid, _ := strconv.Atoi(started.attrs["pid"])
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("the service (pid %d) after Close: %v; want it running", pid, err)
	}
	if a.Activate("close.test", fails.fn()) {
		t.Error("Activate after Close: true")
	}
	release(t, hold)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	// It wrote "bye" into the pipe Close closed: SIGPIPE.
	if !ws.Signaled() || ws.Signal() != syscall.SIGPIPE {
		t.Errorf("the service ended %v; want SIGPIPE", ws)
	}
	fails.none(t)
}

// A process that took its name and still runs when its name is asked for
// again (it released it) is not started twice: Activate waits for it,
// and its end is then a failure.
func TestActivateWhileRunning(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	hold := fifo(t)
	writeService(t, dir, "again.test", childService(t, "again.test", "hold", "ACT_FIFO="+hold, "ACT_CODE=5"))
	a, rec := start(t, Config{Dir: dir})
	fails := newFailures()
	a.Activate("again.test", fails.fn())
	rec.wait(t, "service started", "service", "again.test")
	a.Owned("again.test")
	if !a.Activate("again.test", fails.fn()) {
		t.Fatal("Activate while it runs: false")
	}
	rec.wait(t, "service still runs from an earlier start, without its name: waiting for it to take it", "service", "again.test")
	release(t, hold)
	if err := fails.next(t); err == nil || err.Error() != "exit status 5" {
		t.Errorf("failed(%v); want exit status 5", err)
	}
	if n := len(rec.find("service started", "service", "again.test")); n != 1 {
		t.Errorf("%d processes started; want 1", n)
	}
	fails.none(t)
}

// A service whose start failed is not started again within the holdoff:
// failed is called at once with that failure; a changed file is started
// at once.
func TestHoldoffAfterFailure(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "crash.test", childService(t, "crash.test", "exit", "ACT_CODE=3"))
	a, rec := start(t, Config{Dir: dir, Holdoff: time.Hour})
	fails := newFailures()
	a.Activate("crash.test", fails.fn())
	fails.next(t)
	a.Activate("crash.test", fails.fn())
	err := fails.next(t)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.HasPrefix(err.Error(), "exit status 3, ") || !strings.Contains(err.Error(), "not started again within 1h0m0s of a failure") {
		t.Errorf("within the holdoff: failed(%v); want the last exit status, and why", err)
	}
	if n := len(rec.find("service started", "service", "crash.test")); n != 1 {
		t.Errorf("%d processes started; want 1", n)
	}
	writeService(t, dir, "crash.test", childService(t, "crash.test", "exit", "ACT_CODE=4"))
	rec.wait(t, "service changed", "service", "crash.test")
	a.Activate("crash.test", fails.fn())
	if err := fails.next(t); err.Error() != "exit status 4" {
		t.Errorf("after a change: failed(%v); want exit status 4", err)
	}
	fails.none(t)
}
