package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// The end-to-end tests build busd and bus and run them as separate
// processes, the way a user does.
var binDir string

func TestMain(m *testing.M) {
	bustest.Main(m, &binDir, "github.com/busd/busd/cmd/busd", "github.com/busd/busd/cmd/bus")
}

// busd is a running broker process, with the context that bounds every
// process the test starts.
type busd struct {
	*bustest.Busd
	ctx context.Context
}

func startBusd(t *testing.T) *busd {
	b := &busd{Busd: bustest.Start(t, binDir)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	b.ctx = ctx
	return b
}

// bus returns a bus command for this broker.
func (b *busd) bus(args ...string) *exec.Cmd {
	cmd := exec.CommandContext(b.ctx, filepath.Join(binDir, "bus"), args...)
	cmd.Env = b.Env()
	return cmd
}

// run runs `bus ARGS` to its end with stdin and returns its stdout, its
// stderr and how it exited.
func (b *busd) run(stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := b.bus(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// proc is a running `bus sub` or `bus reply`.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// start starts `bus ARGS` and waits until it says on stderr that it is
// ready. The process is killed, if still running, when the test ends.
func (b *busd) start(t *testing.T, ready string, args ...string) *proc {
	t.Helper()
	return b.startIn(t, "", ready, args...)
}

// startIn is start with stdin as the process's standard input.
func (b *busd) startIn(t *testing.T, stdin, ready string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: b.bus(args...), out: new(syncBuffer)}
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout = p.out
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	bustest.WaitLine(t, stderr, ready)
	return p
}

// startSub starts `bus sub ARGS` and waits until its subscriptions are live.
func (b *busd) startSub(t *testing.T, args ...string) *proc {
	t.Helper()
	return b.start(t, "bus: subscribed", append([]string{"sub"}, args...)...)
}

// wait waits for the process to exit, which it must do cleanly, and
// returns its output. The test's context kills it if it does not exit.
func (p *proc) wait(t *testing.T) string {
	t.Helper()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("%q: %v; output:\n%s", p.cmd.Args, err, p.out)
	}
	return p.out.String()
}

// stop interrupts the process, as ctrl-C does, and waits for its clean exit.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	return p.wait(t)
}

// syncBuffer is a bytes.Buffer a test may read while a process writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (b *busd) pub(t *testing.T, stdin string, args ...string) {
	t.Helper()
	if _, errOut, err := b.run(stdin, append([]string{"pub"}, args...)...); err != nil {
		t.Fatalf("bus pub %q: %v\n%s", args, err, errOut)
	}
}

func TestCLIWildcardPubSub(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-count", "3", "app.*.opened", "logs.>")
	b.pub(t, "", "app.editor.opened", "hello")
	b.pub(t, "", "app.editor.closed", "not for us")
	b.pub(t, "line one\nline two\n", "logs.web")
	out := sub.wait(t)
	for _, want := range []string{
		"app.editor.opened 5B pid=", " fds=0 hello\n",
		"logs.web 8B", "line one\n", "line two\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not for us") {
		t.Errorf("got a message the patterns do not match:\n%s", out)
	}
}

func TestCLIRawAndCount(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-raw", "-count", "4", "n")
	b.pub(t, "", "-count", "4", "n", "x y")
	if out := sub.wait(t); out != "x y\nx y\nx y\nx y\n" {
		t.Fatalf("got %q", out)
	}
}

// Fifty files attached to one message reach the subscriber, which prints
// their contents, and the broker's descriptor count comes back to where it was.
func TestCLIAttachFiftyFiles(t *testing.T) {
	b := startBusd(t)
	dir := t.TempDir()
	var args []string
	var want strings.Builder
	want.WriteString("payload\n")
	for i := range 50 {
		p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		content := fmt.Sprintf("content of file %d\n", i)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-attach", p)
		want.WriteString(content)
	}
	before := b.FDs(t)
	sub := b.startSub(t, "-raw", "-cat-fds", "-count", "1", "files")
	b.pub(t, "", append(args, "files", "payload")...)
	if out := sub.wait(t); out != want.String() {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want.String())
	}
	b.WaitFDs(t, before)
}

func TestCLIErrors(t *testing.T) {
	b := startBusd(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "a..b", "x"}, `topic "a..b": token 2 is empty`},
		{[]string{"sub", "a.>.b"}, "not the last token"},
		{[]string{"pub", "-attach", "/nonexistent", "a", "x"}, "no such file"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"pub"}, "usage: bus pub"},
		{[]string{"pub", "-H", "novalue", "a", "x"}, `header "novalue": want key=value`},
		{[]string{"pub", "-H", "=v", "a", "x"}, "non-empty key"},
		{[]string{"pub", "-json", "a", `{"a":`}, "invalid JSON: unexpected EOF"},
		{[]string{"pub", "-json", "a", `{} x`}, "invalid JSON"},
		{[]string{"sub", "-json", "-raw", "a"}, "does not go with -raw"},
		{[]string{"sub", "-queue", "a.b", "a"}, "group"},
		{[]string{"req"}, "usage: bus req"},
		{[]string{"req", "-json", "a", "nope"}, "invalid JSON"},
		{[]string{"reply", "a"}, "DATA or -exec, not both"},
		{[]string{"reply", "-exec", "cat", "a", "x"}, "DATA or -exec, not both"},
		{[]string{"reply", "-json", "a", "{"}, "invalid JSON"},
		{[]string{"pub", "-trust", "nobody", "a", "x"}, `"nobody" is not a numeric uid`},
		{[]string{"whois"}, "usage: bus whois"},
		{[]string{"whois", "7x"}, `CONNID "7x": not a connection id`},
		{[]string{"whois", "123456789"}, "no connection 123456789 on this bus"},
	} {
		out, err := b.bus(tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("bus %q: err %v, output %q; want failure saying %q", tc.args, err, out, tc.want)
		}
	}
	cmd := b.bus("pub", "a", "x")
	cmd.Env = append(cmd.Env, "BUSD_DIR="+t.TempDir()) // a directory with no bus
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no bus is up at") || !strings.Contains(string(out), "start busd") {
		t.Errorf("pub to a missing bus: err %v, output %q", err, out)
	}
}

// bus refuses a socket in a directory that others may write to, before
// it sends anything, and says why.
func TestCLIRefusesAnUntrustedDirectory(t *testing.T) {
	b := startBusd(t)
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "default.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err := b.bus("pub", "-dir", dir, "-trust", "4242", "a", "x").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "untrusted bus") || !strings.Contains(string(out), "mode 0777") {
		t.Fatalf("bus pub in a 0777 directory: err %v, output %q; want a refusal naming the mode", err, out)
	}
	ln.(*net.UnixListener).SetDeadline(time.Now())
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatal("bus connected to the socket in the untrusted directory")
	}
}

// One file through busd to three subscriber processes, each of which reads
// it whole.
func TestCLIFileToThreeSubscribers(t *testing.T) {
	b := startBusd(t)
	p := filepath.Join(t.TempDir(), "shared.txt")
	if err := os.WriteFile(p, []byte("one file, three readers\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := b.FDs(t)
	var subs []*proc
	for range 3 {
		subs = append(subs, b.startSub(t, "-cat-fds", "-count", "1", "share.>"))
	}
	b.pub(t, "", "-attach", p, "share.file", "see attached")
	for i, s := range subs {
		out := s.wait(t)
		if !strings.Contains(out, "share.file 12B pid=") || !strings.Contains(out, "fds=1 see attached\none file, three readers\n") {
			t.Errorf("subscriber %d printed:\n%s", i, out)
		}
	}
	b.WaitFDs(t, before)
}
