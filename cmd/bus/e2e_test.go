package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// busd is a running broker process.
type busd struct{ *bustest.Busd }

func startBusd(t *testing.T) *busd { return &busd{bustest.Start(t, binDir)} }

// bus returns a bus command for this broker.
func (b *busd) bus(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "bus"), args...)
	cmd.Env = b.Env()
	return cmd
}

// subscriber is a running `bus sub`.
type subscriber struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

// startSub starts `bus sub ARGS` and waits until its subscriptions are live.
func (b *busd) startSub(t *testing.T, args ...string) *subscriber {
	t.Helper()
	s := &subscriber{cmd: b.bus(append([]string{"sub"}, args...)...), out: new(bytes.Buffer)}
	s.cmd.Stdout = s.out
	stderr, _ := s.cmd.StderrPipe()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	bustest.WaitLine(t, stderr, "bus: subscribed")
	return s
}

// wait waits for a `bus sub -count N` to exit and returns its output.
func (s *subscriber) wait(t *testing.T) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bus sub: %v\n%s", err, s.out)
		}
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("bus sub did not finish; output so far:\n%s", s.out)
	}
	return s.out.String()
}

func (b *busd) pub(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := b.bus(append([]string{"pub"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bus pub %q: %v\n%s", args, err, out)
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
	} {
		out, err := b.bus(tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("bus %q: err %v, output %q; want failure saying %q", tc.args, err, out, tc.want)
		}
	}
	cmd := b.bus("pub", "a", "x")
	cmd.Env = append(cmd.Env, "BUSD_DIR="+t.TempDir()) // a directory with no bus
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no such file") || !strings.Contains(string(out), "is busd running?") {
		t.Errorf("pub to a missing bus: err %v, output %q", err, out)
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
	var subs []*subscriber
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
