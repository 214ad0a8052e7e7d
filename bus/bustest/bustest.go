// Package bustest runs busd for end-to-end tests: it builds the project's
// binaries, starts a broker as a separate process on a private directory,
// and stops it checking that it exits cleanly.
package bustest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
}

// Start runs binDir/busd on a fresh directory, waits until it listens, and
// stops it when the test ends.
func Start(t *testing.T, binDir string) *Busd {
	t.Helper()
	tmp, err := os.MkdirTemp("", "e2e") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	b := &Busd{Dir: filepath.Join(tmp, "bus")}
	b.Cmd = exec.Command(filepath.Join(binDir, "busd"), "-dir", b.Dir)
	stderr, _ := b.Cmd.StderrPipe()
	if err := b.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop(t) })
	WaitLine(t, stderr, "msg=listening")
	return b
}

// Env returns the environment that points clients at this broker.
func (b *Busd) Env() []string {
	return append(os.Environ(), "BUSD_DIR="+b.Dir, "BUSD_SOCKET=")
}

// Stop sends SIGINT and expects a clean exit with the socket removed.
func (b *Busd) Stop(t *testing.T) {
	t.Helper()
	if b.Cmd.ProcessState != nil {
		return
	}
	b.Cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- b.Cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("busd exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		b.Cmd.Process.Kill()
		<-done
		t.Error("busd did not stop on SIGINT")
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "default.sock")); !os.IsNotExist(err) {
		t.Errorf("socket still there after stop: %v", err)
	}
}

// FDs counts the broker's open descriptors.
func (b *Busd) FDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", b.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// WaitFDs waits up to five seconds for the broker's descriptor count to
// come back to want.
func (b *Busd) WaitFDs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.FDs(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("busd has %d descriptors open; want %d", b.FDs(t), want)
		}
		time.Sleep(10 * time.Millisecond)
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
