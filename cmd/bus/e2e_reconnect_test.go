package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// A whole restart, end to end: bus sub started before any busd waits for
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

// A broker restarted with a policy that refuses what a command had
// subscribed to: the command does not stay running deaf, it fails naming
// the refusal. Each waiting command is tried: sub, a queue-group sub,
// monitor, reply, stream listen and own.
func TestCLIRefusedAfterARestartFails(t *testing.T) {
	b := startBusd(t)
	policy := filepath.Join(t.TempDir(), "policy")
	rules := "deny any subscribe refused.>\ndeny any subscribe watched.>\ndeny any listen refused-stream\ndeny any own org.refused\ndeny any subscribe $SYS.name.owner.org.unwatched\nallow any all >\n"
	if err := os.WriteFile(policy, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var stderrs []<-chan string
	for _, tc := range []struct {
		args  []string
		ready string
	}{
		{[]string{"sub", "refused.a"}, "bus: subscribed"},
		{[]string{"sub", "-queue", "workers", "refused.b"}, "bus: subscribed"},
		{[]string{"monitor", "watched.>"}, "bus: monitoring"},
		{[]string{"reply", "refused.svc", "ok"}, "bus: replying"},
		{[]string{"stream", "listen", "refused-stream"}, "bus: listening"},
		{[]string{"own", "org.refused"}, "bus: requested org.refused"},
		{[]string{"own", "org.unwatched"}, "bus: requested org.unwatched"}, // its name comes back, the watch of it does not
	} {
		cmd, _, stderr := b.startPiped(t, tc.args...)
		expectLine(t, stderr, tc.ready)
		cmds, stderrs = append(cmds, cmd), append(stderrs, stderr)
	}
	killBusd(t, b)
	bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-dir", b.Dir, "-policy", policy}})
	for i, cmd := range cmds {
		// All of stderr first: Wait closes the pipe, and with it what is
		// not read yet.
		var said []string
		timeout := time.After(20 * time.Second)
	read:
		for {
			select {
			case l, ok := <-stderrs[i]:
				if !ok {
					break read
				}
				said = append(said, l)
			case <-timeout:
				t.Errorf("%q still runs 20s after the restarted bus refused it; it said %q", cmd.Args, said)
				cmd.Process.Kill()
				break read
			}
		}
		if err := cmd.Wait(); exitCode(err) != 1 {
			t.Errorf("%q refused after the restart: %v; want exit status 1", cmd.Args, err)
		}
		if len(said) == 0 {
			t.Errorf("%q said nothing; want the refusal", cmd.Args)
			continue
		}
		restoredLine := func(l string) bool { return strings.Contains(l, "restored") }
		if cmd.Args[1] == "own" && cmd.Args[2] == "org.refused" { // its name is not restored, the watch of it is
			restoredLine = func(l string) bool { return strings.Contains(l, "name forbidden") && l != said[len(said)-1] }
		}
		if last := said[len(said)-1]; !strings.Contains(last, "denied by rule") || slices.ContainsFunc(said, restoredLine) {
			t.Errorf("%q said %q; want the refusal last, once, and no line saying it was restored", cmd.Args, said)
		}
	}
}
