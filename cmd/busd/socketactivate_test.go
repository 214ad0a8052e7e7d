package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// systemd's own socket activation, not a stand-in: systemd-socket-activate
// (from the systemd package) listens on the bus's socket, and on the first
// connection execs busd with the socket as LISTEN_FDS, named by
// LISTEN_FDNAMES, as a user unit's .socket would (docs/systemd). busd
// serves that connection and the socket, and leaves it in place when it
// stops. The tool comes with dbus-broker, which .ci/run installs for the
// benchmark harness; where it is missing the test says so and skips.
func TestSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate is not installed (Debian: systemd); the stand-in test TestActivatedSocketServedAndLeftInPlace still runs")
	}
	t.Parallel()
	tmp, err := os.MkdirTemp("", "sda")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	path := filepath.Join(tmp, "default.sock")
	cmd := exec.Command(tool, "--listen="+path, "--fdname=default", filepath.Join(binDir, "busd"), "-dir", tmp)
	out := startLogged(t, cmd)
	out.await(t, "Listening on "+path) // the tool's word that it listens
	c, err := bustest.DialRaw(path)    // queued until busd, exec'd by the tool, accepts
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("activated-by-systemd"); err != nil {
		t.Fatalf("handshake through systemd's activation: %v", err)
	}
	if err := pingPong(c, 1); err != nil {
		t.Fatal(err)
	}
	out.await(t, "name=default") // busd names the socket by LISTEN_FDNAMES
	second, err := bustest.DialRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.Hello("second"); err != nil {
		t.Fatalf("a second connection: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM) // the tool's pid is busd's: it execs it
	if err := out.wait(t); err != nil {
		t.Fatalf("busd after SIGTERM: %v; want status 0", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("after busd stopped the activated socket is %v, %v; want it left for systemd", fi, err)
	}
}

// loggedCmd is a command whose output is read line by line.
type loggedCmd struct {
	cmd    *exec.Cmd
	lines  chan string // closed at the output's end
	exited chan error  // how it exited, once
	mu     sync.Mutex
	log    strings.Builder
}

// startLogged starts cmd with its stdout and stderr as lines; it is killed
// if still running when the test ends, and its output shown if the test
// failed.
func startLogged(t *testing.T, cmd *exec.Cmd) *loggedCmd {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	l := &loggedCmd{cmd: cmd, lines: make(chan string, 256), exited: make(chan error, 1)}
	go func() {
		defer close(l.lines)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.log.WriteString(sc.Text() + "\n")
			l.mu.Unlock()
			select {
			case l.lines <- sc.Text():
			default: // nobody awaits that many: the log keeps it
			}
		}
	}()
	go func() { l.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() // nothing if it has exited
		if t.Failed() {
			l.mu.Lock()
			t.Logf("%s wrote:\n%s", filepath.Base(cmd.Path), l.log.String())
			l.mu.Unlock()
		}
	})
	return l
}

// await skips lines until one containing want.
func (l *loggedCmd) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(watchdog)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				t.Fatalf("output ended without %q", want)
			}
			if strings.Contains(line, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within %v", want, watchdog)
		}
	}
}

// wait returns how the command exited, failing the test if it runs on
// past the watchdog.
func (l *loggedCmd) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-l.exited:
		return err
	case <-time.After(watchdog):
		t.Fatalf("%s still running after %v", filepath.Base(l.cmd.Path), watchdog)
	}
	return nil
}

// The user units in docs/systemd are ones systemd accepts: systemd-analyze
// verify finds nothing wrong with them once ExecStart points at a busd
// that exists (the units name the go install path; make install rewrites
// it for its PREFIX).
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: systemd)")
	}
	t.Parallel()
	dir := t.TempDir()
	runtimeDir := filepath.Join(dir, "run") // --user wants a runtime directory, as a session has
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, name := range []string{"busd.socket", "busd.service"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if rest, ok := strings.CutPrefix(l, "ExecStart="); ok {
				_, args, _ := strings.Cut(rest, " ")
				lines[i] = strings.TrimSpace("ExecStart=" + filepath.Join(binDir, "busd") + " " + args)
			}
		}
		unit := filepath.Join(dir, name)
		if err := os.WriteFile(unit, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, unit)
	}
	cmd := exec.Command(analyze, append([]string{"--user", "verify"}, units...)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
