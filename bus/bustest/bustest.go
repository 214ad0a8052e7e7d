// Package bustest runs busd for end-to-end tests: it builds the project's
// binaries, starts a broker as a separate process on a private directory,
// measures it from outside (descriptors, memory, logs), speaks the wire
// protocol to it frame by frame (RawConn), and stops it checking that it
// exits cleanly.
package bustest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Build compiles the given packages into dir, for tests that run them as a
// user would. Call it from TestMain.
func Build(dir string, pkgs ...string) error {
	out, err := exec.Command("go", append([]string{"build", "-o", dir}, pkgs...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("building %v: %w\n%s", pkgs, err, out)
	}
	return nil
}

// Busd is a broker process.
type Busd struct {
	Cmd *exec.Cmd
	Dir string // its socket directory

	exited  chan struct{} // closed once the process has exited and been waited for
	waitErr error         // how it exited; read after exited is closed
	stopped bool          // Stop or WaitExit has reported its exit

	logMu   sync.Mutex
	log     strings.Builder // everything it wrote to stderr
	logMore chan struct{}   // closed and replaced when log grows or ends
	logDone bool            // stderr reached its end
}

// Options change how StartWith runs busd.
type Options struct {
	// Args are extra command-line flags, such as "-max-pending", "4194304".
	// They come after the flags the other options add, so they win.
	Args []string
	// Shared makes the socket reachable by every user, for tests that
	// connect as another uid: busd runs with -mode 0666 and the socket's
	// directory, and the temporary one above it, are world-searchable (and
	// writable by their owner only, as busd requires).
	Shared bool
	// OpenParent makes the temporary directory above the socket's
	// directory world-searchable and leaves the socket's directory for
	// busd to create, for tests of how busd makes it (-group).
	OpenParent bool
	// NoFile, if not 0, is the RLIMIT_NOFILE busd runs with, soft and hard
	// (busd raises its soft limit to the hard one, so lowering only the
	// soft one would not last). busd is started through /bin/sh's ulimit,
	// which then execs it: its pid is the shell's.
	NoFile uint64
	// Dir, if not "", is the socket directory to use instead of a fresh
	// one: a second broker for a bus that another served, or serves.
	// The caller owns it.
	Dir string
	// Env is added to busd's environment (NOTIFY_SOCKET=..., say).
	Env []string
	// Activate passes these listening sockets to busd as systemd socket
	// activation does: as descriptors 3 and on, with LISTEN_FDS and
	// LISTEN_PID (busd is started through /bin/sh, which sets LISTEN_PID to
	// its own pid and execs it). Not with NoFile.
	Activate []*os.File
}

// Start runs binDir/busd on a fresh directory, waits until it listens, and
// stops it when the test ends.
func Start(t *testing.T, binDir string) *Busd {
	t.Helper()
	return StartWith(t, binDir, Options{})
}

// StartWith is Start with options. The broker's stderr is kept (see Log),
// and shown in the test's log if the test fails.
func StartWith(t *testing.T, binDir string, opts Options) *Busd {
	t.Helper()
	b := &Busd{Dir: opts.Dir, exited: make(chan struct{}), logMore: make(chan struct{})}
	tmp := filepath.Dir(opts.Dir)
	if opts.Dir == "" {
		var err error
		tmp, err = os.MkdirTemp("", "e2e") // short: sun_path is 108 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
		b.Dir = filepath.Join(tmp, "bus")
	}
	args := []string{"-dir", b.Dir}
	if opts.Shared || opts.OpenParent {
		if err := os.Chmod(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Shared {
		// busd accepts a directory that only its owner can write to.
		if err := os.Mkdir(b.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-mode", "0666")
	}
	args = append(args, opts.Args...)
	bin := filepath.Join(binDir, "busd")
	switch {
	case opts.NoFile != 0:
		script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, opts.NoFile)
		b.Cmd = exec.Command("/bin/sh", append([]string{"-c", script, bin}, args...)...)
	case len(opts.Activate) > 0:
		script := fmt.Sprintf(`LISTEN_PID=$$ LISTEN_FDS=%d exec "$0" "$@"`, len(opts.Activate))
		b.Cmd = exec.Command("/bin/sh", append([]string{"-c", script, bin}, args...)...)
		b.Cmd.ExtraFiles = opts.Activate
	default:
		b.Cmd = exec.Command(bin, args...)
	}
	if len(opts.Env) > 0 {
		b.Cmd.Env = append(os.Environ(), opts.Env...)
	}
	// A pipe of our own rather than StderrPipe: Cmd.Wait closes that one,
	// and the waiter below runs while the log is still being read.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b.Cmd.Stderr = w
	err = b.Cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	go b.readLog(r)
	go func() {
		b.waitErr = b.Cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.Stop(t)
		if t.Failed() {
			t.Logf("busd's log:\n%s", b.Log())
		}
	})
	b.WaitLog(t, "msg=listening", 10*time.Second)
	return b
}

// readLog keeps what busd writes to stderr, until it ends.
func (b *Busd) readLog(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for {
		more := sc.Scan()
		b.logMu.Lock()
		if more {
			b.log.WriteString(sc.Text())
			b.log.WriteByte('\n')
		} else {
			b.logDone = true
		}
		close(b.logMore)
		b.logMore = make(chan struct{})
		b.logMu.Unlock()
		if !more {
			return
		}
	}
}

// Log returns what busd has written to stderr so far.
func (b *Busd) Log() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return b.log.String()
}

// WaitLog waits until busd's stderr has a line containing want, failing
// the test if it has none within d or if stderr ends first.
func (b *Busd) WaitLog(t testing.TB, want string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		b.logMu.Lock()
		found, done, more := strings.Contains(b.log.String(), want), b.logDone, b.logMore
		b.logMu.Unlock()
		switch {
		case found:
			return
		case done:
			t.Fatalf("busd's stderr ended without %q:\n%s", want, b.Log())
		}
		select {
		case <-more:
		case <-timer.C:
			t.Fatalf("busd logged no %q within %v", want, d)
		}
	}
}

// Socket returns the path of the broker's socket.
func (b *Busd) Socket() string { return filepath.Join(b.Dir, "default.sock") }

// Env returns the environment that points clients at this broker.
func (b *Busd) Env() []string {
	return append(os.Environ(), "BUSD_DIR="+b.Dir, "BUSD_SOCKET=")
}

// PID returns the broker's process id.
func (b *Busd) PID() int { return b.Cmd.Process.Pid }

// Alive reports whether the broker's process is still running.
func (b *Busd) Alive() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the broker.
func (b *Busd) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := b.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling busd: %v", err)
	}
}

// WaitExit waits up to d for the broker to exit and returns how it did
// (nil for status 0), failing the test if it is still running then. Stop
// does nothing afterwards.
func (b *Busd) WaitExit(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-b.exited:
	case <-time.After(d):
		b.Cmd.Process.Kill()
		<-b.exited
		b.stopped = true
		t.Fatalf("busd still running %v later; killed", d)
	}
	b.stopped = true
	return b.waitErr
}

// Stop sends SIGINT and expects a clean exit with the socket removed. A
// broker that exited before Stop is reported with how it exited.
func (b *Busd) Stop(t *testing.T) {
	t.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	if !b.Alive() {
		t.Errorf("busd exited before the test ended: %v", b.waitErr)
		return
	}
	b.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.exited:
		if b.waitErr != nil {
			t.Errorf("busd exited with %v", b.waitErr)
		}
	case <-time.After(10 * time.Second):
		b.Cmd.Process.Kill()
		<-b.exited
		t.Error("busd did not stop on SIGINT")
	}
	if _, err := os.Stat(b.Socket()); !os.IsNotExist(err) {
		t.Errorf("socket still there after stop: %v", err)
	}
}

// FDs counts the broker's open descriptors.
func (b *Busd) FDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", b.PID()))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// WaitFDs waits up to five seconds for the broker's descriptor count to
// come back to want.
func (b *Busd) WaitFDs(t *testing.T, want int) {
	t.Helper()
	b.WaitFDsWithin(t, want, 5*time.Second)
}

// WaitFDsWithin waits up to d for the broker's descriptor count to come
// back to want: descriptors are closed by background closers, so the count
// lags the events that free them.
func (b *Busd) WaitFDsWithin(t testing.TB, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for b.FDs(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("busd has %d descriptors open; want %d", b.FDs(t), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RSS returns the broker's resident memory in bytes (VmRSS).
func (b *Busd) RSS(t testing.TB) int64 {
	t.Helper()
	return b.statusKB(t, "VmRSS") << 10
}

// PeakRSS returns the most resident memory the broker has had since it
// started, in bytes (VmHWM).
func (b *Busd) PeakRSS(t testing.TB) int64 {
	t.Helper()
	return b.statusKB(t, "VmHWM") << 10
}

// statusKB reads a "Key: N kB" line of /proc/PID/status.
func (b *Busd) statusKB(t testing.TB, key string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.PID()))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status: %q: %v", b.PID(), line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", b.PID(), key)
	return 0
}

// FDLimit returns the broker's RLIMIT_NOFILE, soft and hard.
func (b *Busd) FDLimit(t testing.TB) (soft, hard uint64) {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Prlimit(b.PID(), unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		t.Fatalf("reading busd's RLIMIT_NOFILE: %v", err)
	}
	return rl.Cur, rl.Max
}

// SetFDLimit sets the broker's soft RLIMIT_NOFILE while it runs, as an
// administrator could with prlimit(1): a test can run it out of
// descriptors without holding thousands itself. Its budgets, derived from
// the limit it started with, do not follow.
func (b *Busd) SetFDLimit(t testing.TB, soft uint64) {
	t.Helper()
	_, hard := b.FDLimit(t)
	if err := unix.Prlimit(b.PID(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: soft, Max: hard}, nil); err != nil {
		t.Fatalf("setting busd's RLIMIT_NOFILE: %v", err)
	}
}

// WaitLine reads r until a line contains want, failing the test after ten
// seconds or if r ends first. It keeps draining r afterwards, so the
// writing process never blocks on a full pipe.
func WaitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), want) {
				found <- true
				for sc.Scan() {
				}
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("output ended without %q", want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %q within 10s", want)
	}
}

// Main builds pkgs into a temporary directory, stores its path in *binDir,
// runs the tests and exits: the whole TestMain of an end-to-end test.
func Main(m *testing.M, binDir *string, pkgs ...string) {
	dir, err := os.MkdirTemp("", "busbin")
	if err == nil {
		err = Build(dir, pkgs...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
