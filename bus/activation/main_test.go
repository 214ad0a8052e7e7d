package activation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The services these tests start are this test binary, run again: the
// service file's env line ACT_CHILD=MODE says what it does (child). Run
// as "systemctl" (a symbolic link of that name to it), it is a fake
// systemctl (fakeSystemctl).
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "systemctl" {
		os.Exit(fakeSystemctl())
	}
	if mode := os.Getenv("ACT_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	code := m.Run()
	if code == 0 {
		// Every test closes its Activator: nothing of them may be left.
		if left := leftGoroutines(5 * time.Second); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "left behind after every test:\n%s\n", strings.Join(left, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leftGoroutines waits up to d for the goroutines of this package's code
// and of fsnotify, but the tests', to have ended, and returns those left.
// Goroutines on their way out have no event to wait on: it polls.
func leftGoroutines(d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		left := activationGoroutines()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchdog bounds every wait of these tests.
const watchdog = 20 * time.Second

// report is what a child in mode "report" prints, one JSON line.
type report struct {
	Env    []string
	FDs    []string // the descriptors it has open, as "N -> target"
	Cwd    string
	Leader bool // it leads its own session
	Stdin  string
	UID    int
	GID    int
	Groups []int
}

// child is this binary run as a service: mode report prints a report on
// stdout; exit writes lines (ACT_OUT, split on |, and ACT_ERR on stderr,
// ACT_LONG bytes as one line, ACT_LINES numbered lines) and exits
// ACT_CODE; hold does that after it has read its FIFO ACT_FIFO to its end;
// kill kills itself.
func child(mode string) int {
	switch mode {
	case "report":
		// Before anything opens a descriptor of its own.
		r := report{FDs: openFDs(), Env: os.Environ(), Leader: mustInt(unix.Getsid(0)) == os.Getpid(),
			UID: os.Getuid(), GID: os.Getgid()}
		r.Cwd, _ = os.Getwd()
		r.Stdin, _ = os.Readlink("/proc/self/fd/0")
		r.Groups, _ = os.Getgroups()
		b, _ := json.Marshal(r)
		fmt.Printf("REPORT %s\n", b)
		return 0
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "hold":
		f, err := os.Open(os.Getenv("ACT_FIFO"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 99
		}
		io.Copy(io.Discard, f)
	}
	if s := os.Getenv("ACT_OUT"); s != "" {
		for l := range strings.SplitSeq(s, "|") {
			fmt.Println(l)
		}
	}
	if s := os.Getenv("ACT_ERR"); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	if n, _ := strconv.Atoi(os.Getenv("ACT_LONG")); n > 0 {
		fmt.Println(strings.Repeat("x", n))
		fmt.Println("after the long line")
	}
	n, _ := strconv.Atoi(os.Getenv("ACT_LINES"))
	for i := range n {
		fmt.Println("line", i)
	}
	code, _ := strconv.Atoi(os.Getenv("ACT_CODE"))
	return code
}

func mustInt(n int, err error) int {
	if err != nil {
		return -1
	}
	return n
}

// openFDs lists the process's descriptors with raw system calls, which
// open nothing but the one listing them (left out).
func openFDs() []string {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return []string{err.Error()}
	}
	defer unix.Close(dfd)
	buf := make([]byte, 1<<16)
	n, err := unix.Getdents(dfd, buf)
	if err != nil {
		return []string{err.Error()}
	}
	_, _, names := unix.ParseDirent(buf[:n], -1, nil)
	var fds []string
	for _, name := range names {
		if name == strconv.Itoa(dfd) {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + name)
		fds = append(fds, name+" -> "+target)
	}
	return fds
}

// fakeSystemctl appends its arguments to the file "calls" beside it and
// exits 0, or, for the unit missing.service, says it is not found and
// exits 5, as systemctl does.
func fakeSystemctl() int {
	f, err := os.OpenFile(filepath.Join(filepath.Dir(os.Args[0]), "calls"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(f, strings.Join(os.Args[1:], " "))
	f.Close()
	if slices.Contains(os.Args, "missing.service") {
		fmt.Fprintln(os.Stderr, "Failed to start missing.service: Unit missing.service not found.")
		return 5
	}
	return 0
}

// record is one line an Activator logged.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r record) String() string { return fmt.Sprintf("%s %q %v", r.level, r.msg, r.attrs) }

// recorder is a slog.Handler that keeps every record, for tests to wait
// for the one they expect.
type recorder struct {
	mu   sync.Mutex
	recs []record
	more chan struct{} // closed and replaced on each record
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{})} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	x := record{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		x.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, x)
	close(r.more)
	r.more = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// find returns the records that match msg and every attr (key, value
// pairs).
func (r *recorder) find(msg string, attrs ...string) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []record
	for _, x := range r.recs {
		if x.msg == msg && x.matches(attrs) {
			found = append(found, x)
		}
	}
	return found
}

func (x record) matches(attrs []string) bool {
	for i := 0; i+1 < len(attrs); i += 2 {
		if x.attrs[attrs[i]] != attrs[i+1] {
			return false
		}
	}
	return true
}

// wait returns the first record that matches msg and attrs, waiting for
// it within the watchdog.
func (r *recorder) wait(t *testing.T, msg string, attrs ...string) record {
	t.Helper()
	return r.waitN(t, 1, msg, attrs...)[0]
}

// waitN waits, within the watchdog, until n records match msg and attrs,
// and returns them.
func (r *recorder) waitN(t *testing.T, n int, msg string, attrs ...string) []record {
	t.Helper()
	deadline := time.After(watchdog)
	for {
		r.mu.Lock()
		more := r.more
		r.mu.Unlock()
		if found := r.find(msg, attrs...); len(found) >= n {
			return found
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("fewer than %d log lines %q %v within %v; the log:\n%s", n, msg, attrs, watchdog, r.dump())
		}
	}
}

func (r *recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, x := range r.recs {
		fmt.Fprintln(&b, x)
	}
	return b.String()
}

// servicesDir returns a new directory for service files, only the
// test's user's to write (MkdirTemp makes it 0700).
func servicesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "act")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeService puts the file NAME.service in dir with the body given,
// renaming it into place as an installer would.
func writeService(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name+Suffix)
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// self is this test binary, which the services run.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// childService is the body of a service file for name that runs this
// binary as a child in mode, with more env lines.
func childService(t *testing.T, name, mode string, env ...string) string {
	t.Helper()
	body := fmt.Sprintf("name = %s\nexec = %s -test.run=^$\nenv = ACT_CHILD=%s\n", name, self(t), mode)
	for _, e := range env {
		body += "env = " + e + "\n"
	}
	return body
}

// start makes an Activator on dir that logs to a recorder, and closes
// it when the test ends, checking that it closes in time.
func start(t *testing.T, cfg Config) (*Activator, *recorder) {
	t.Helper()
	rec := newRecorder()
	cfg.Logger = slog.New(rec)
	if cfg.Socket == "" {
		cfg.Socket = "/run/test/bus.sock"
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), watchdog)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, rec
}

// failures collects the calls of failed callbacks.
type failures chan error

func newFailures() failures { return make(chan error, 1024) }

func (f failures) fn() func(error) { return func(err error) { f <- err } }

// next returns the next error failed was called with.
func (f failures) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f:
		return err
	case <-time.After(watchdog):
		t.Fatalf("failed not called within %v", watchdog)
		return nil
	}
}

// none checks that failed has not been called (so far).
func (f failures) none(t *testing.T) {
	t.Helper()
	select {
	case err := <-f:
		t.Fatalf("failed called with %v; want no call", err)
	default:
	}
}

// fifo makes a named pipe for a "hold" child, and returns its path.
func fifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// release lets the "hold" child reading path go on: it opens the FIFO
// for writing (waiting for the child to have opened it) and closes it.
func release(t *testing.T, path string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			err = f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(watchdog):
		t.Fatal("the child never opened its FIFO")
	}
}

// activationGoroutines returns the stacks of goroutines running this
// package's code or fsnotify's, other than the tests'.
func activationGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "activation.TestMain") {
			continue
		}
		if strings.Contains(g, "busd/bus/activation.") || strings.Contains(g, "fsnotify") {
			left = append(left, g)
		}
	}
	return left
}

func slogNew(h slog.Handler) *slog.Logger { return slog.New(h) }
