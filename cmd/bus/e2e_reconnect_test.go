package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// lines sends every line r gives on the channel it returns, which is
// closed at r's end.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// expectLine waits for a line containing want, skipping others, failing
// the test after ten seconds or if the output ends first.
func expectLine(t *testing.T, ch <-chan string, want string) string {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended without %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-timer.C:
			t.Fatalf("no %q within 10s", want)
		}
	}
}

// killBusd kills b with SIGKILL, as a crash would: no goodbye to its
// clients, its socket left behind.
func killBusd(t *testing.T, b *busd) {
	t.Helper()
	b.Signal(t, syscall.SIGKILL)
	b.WaitExit(t, 10*time.Second) // killed: the error says so
}

// restartBusd starts another busd on b's directory, as a supervisor
// restarting a crashed one would.
func restartBusd(t *testing.T, b *busd) {
	t.Helper()
	bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-dir", b.Dir}}) // the last -dir wins
}

// startPiped starts `bus ARGS` with its stdout and stderr as lines.
func (b *busd) startPiped(t *testing.T, args ...string) (cmd *exec.Cmd, stdout, stderr <-chan string) {
	t.Helper()
	cmd = b.bus(args...)
	stdout, stderr = startLines(t, cmd)
	return cmd, stdout, stderr
}

// startLines starts cmd with its stdout and stderr as lines, and kills it,
// if still running, when the test ends.
func startLines(t *testing.T, cmd *exec.Cmd) (stdout, stderr <-chan string) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return lines(out), lines(errOut)
}

// bus sub carries on across a broker killed with SIGKILL and restarted:
// one message before, one after, and it exits 0 having printed both.
func TestCLISubCarriesOnAcrossABusdRestart(t *testing.T) {
	b := startBusd(t)
	cmd, stdout, stderr := b.startPiped(t, "sub", "-count", "2", "-raw", "restart.t")
	expectLine(t, stderr, "bus: subscribed")
	b.pub(t, "", "restart.t", "before")
	expectLine(t, stdout, "before")
	killBusd(t, b)
	expectLine(t, stderr, "bus: connection lost (")
	restartBusd(t, b)
	if l := expectLine(t, stderr, "bus: reconnected to "); !strings.HasSuffix(l, ", 1 subscriptions restored") {
		t.Fatalf("reconnect line %q; want 1 subscription restored", l)
	}
	b.pub(t, "", "restart.t", "after")
	expectLine(t, stdout, "after")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bus sub: %v", err)
	}
}

// With -no-reconnect, bus sub, bus reply and bus stream listen fail when
// the connection ends.
func TestCLINoReconnectFails(t *testing.T) {
	b := startBusd(t)
	sub, _, subErr := b.startPiped(t, "sub", "-no-reconnect", "x")
	expectLine(t, subErr, "bus: subscribed")
	reply, _, replyErr := b.startPiped(t, "reply", "-no-reconnect", "y", "ok")
	expectLine(t, replyErr, "bus: replying")
	listen, _, listenErr := b.startPiped(t, "stream", "-no-reconnect", "listen", "z")
	expectLine(t, listenErr, "bus: listening")
	killBusd(t, b)
	for _, cmd := range []*exec.Cmd{sub, reply, listen} {
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("%q after the bus died: %v; want exit status 1", cmd.Args, err)
		}
	}
}

// bus reply and bus stream listen carry on across a restart too.
func TestCLIReplyAndListenCarryOnAcrossABusdRestart(t *testing.T) {
	b := startBusd(t)
	_, _, replyErr := b.startPiped(t, "reply", "restart.svc", "pong")
	expectLine(t, replyErr, "bus: replying")
	listen, listenOut, listenErr := b.startPiped(t, "stream", "listen", "restart")
	expectLine(t, listenErr, "bus: listening")
	killBusd(t, b)
	restartBusd(t, b)
	expectLine(t, replyErr, "bus: reconnected to ")
	expectLine(t, listenErr, "bus: reconnected to ")
	if out, errOut, err := b.run("", "req", "restart.svc", "ping"); err != nil || out != "pong\n" {
		t.Fatalf("bus req after the restart: %q, %v\n%s", out, err, errOut)
	}
	if _, errOut, err := b.run("hello\n", "stream", "dial", "restart"); err != nil {
		t.Fatalf("bus stream dial after the restart: %v\n%s", err, errOut)
	}
	expectLine(t, listenOut, "hello")
	if err := listen.Wait(); err != nil {
		t.Fatalf("bus stream listen: %v", err)
	}
}

// What the issue checks, whole: bus sub started before any busd waits for
// the bus, gets one message, follows a busd killed with SIGKILL and
// started again, gets a second, and exits 0 having printed both.
func TestCLISubStartedBeforeTheBusFollowsARestart(t *testing.T) {
	tmp, err := os.MkdirTemp("", "e2e") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	dir := filepath.Join(tmp, "bus")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "bus"), "sub", "-count", "2", "-raw", "early.t")
	cmd.Env = append(os.Environ(), "BUSD_DIR="+dir, "BUSD_SOCKET=")
	out, _ := cmd.StdoutPipe()
	errOut, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	stdout, stderr := lines(out), lines(errOut)
	expectLine(t, stderr, "bus: waiting for a bus at "+filepath.Join(dir, "default.sock"))
	b := &busd{Busd: bustest.StartWith(t, binDir, bustest.Options{Dir: dir}), ctx: ctx}
	expectLine(t, stderr, "bus: subscribed")
	b.pub(t, "", "early.t", "one")
	expectLine(t, stdout, "one")
	killBusd(t, b)
	restartBusd(t, b)
	expectLine(t, stderr, "bus: reconnected to ")
	b.pub(t, "", "early.t", "two")
	expectLine(t, stdout, "two")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bus sub: %v", err)
	}
}

// A queue-group worker (bus sub -queue) follows a busd killed with SIGKILL
// and restarted: its subscription is restored and it takes the next job.
// (That it is restored in its group, not plain, clientlib's reconnect
// tests check: TestReconnectRestoresSubscriptions.)
func TestCLIQueueWorkerFollowsARestart(t *testing.T) {
	b := startBusd(t)
	cmd, stdout, stderr := b.startPiped(t, "sub", "-queue", "workers", "-count", "2", "-raw", "jobs.t")
	expectLine(t, stderr, "bus: subscribed")
	b.pub(t, "", "jobs.t", "job-1")
	expectLine(t, stdout, "job-1")
	killBusd(t, b)
	restartBusd(t, b)
	if l := expectLine(t, stderr, "bus: reconnected to "); !strings.HasSuffix(l, ", 1 subscriptions restored") {
		t.Fatalf("reconnect line %q; want 1 subscription restored", l)
	}
	b.pub(t, "", "jobs.t", "job-2")
	expectLine(t, stdout, "job-2")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bus sub -queue: %v", err)
	}
}
