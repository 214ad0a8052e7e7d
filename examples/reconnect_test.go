package examples_test

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// role is a running examples/reconnect process: its stdin, and its stdout
// as lines, kept whole and handed out one at a time to await.
type role struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	more chan struct{} // a token when a line is added or the output ends

	mu      sync.Mutex
	all     []string // every line, in order
	pending []string // the lines await has not taken
	ended   bool
}

// startRole runs reconnect with args and waits for its "ready".
func startRole(t *testing.T, env []string, args ...string) *role {
	t.Helper()
	r := &role{name: strings.Join(args, " "), more: make(chan struct{}, 1)}
	r.cmd = exec.Command(filepath.Join(binDir, "reconnect"), args...)
	r.cmd.Env = env
	var err error
	if r.in, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s printed:\n%s", r.name, strings.Join(r.output(), "\n"))
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.mu.Lock()
			r.all = append(r.all, sc.Text())
			r.pending = append(r.pending, sc.Text())
			r.mu.Unlock()
			r.signal()
		}
		r.mu.Lock()
		r.ended = true
		r.mu.Unlock()
		r.signal()
	}()
	r.await(t, "ready")
	return r
}

// send writes lines to the role's stdin.
func (r *role) send(t *testing.T, lines ...string) {
	t.Helper()
	if _, err := io.WriteString(r.in, strings.Join(lines, "\n")+"\n"); err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
}

func (r *role) signal() {
	select {
	case r.more <- struct{}{}:
	default:
	}
}

// await takes the first line not taken yet that starts with one of
// prefixes, waiting for it, and returns it; the lines before it stay for
// later awaits, as processes print in an order of their own. It fails the
// test if none comes within 20 seconds.
func (r *role) await(t *testing.T, prefixes ...string) string {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		for i, l := range r.pending {
			for _, p := range prefixes {
				if strings.HasPrefix(l, p) {
					r.pending = slices.Delete(r.pending, i, i+1)
					r.mu.Unlock()
					return l
				}
			}
		}
		ended := r.ended
		r.mu.Unlock()
		if ended {
			t.Fatalf("%s: output ended without %q", r.name, prefixes)
		}
		select {
		case <-r.more:
		case <-timeout.C:
			t.Fatalf("%s: no %q within 20s", r.name, prefixes)
		}
	}
}

// output returns every line the role has printed so far.
func (r *role) output() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// count returns how many lines of the role's output are line, or start
// with it if it ends in a space.
func (r *role) count(line string) int {
	n := 0
	for _, l := range r.output() {
		if l == line || strings.HasSuffix(line, " ") && strings.HasPrefix(l, line) {
			n++
		}
	}
	return n
}

// numbers returns the lines "1" to "n" as from..to.
func numbers(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return s
}

// A bus restarted under a subscriber, a queue worker, a replier, a
// publisher and a requester, each a process of its own, killed with
// SIGKILL: every one of them reconnects and carries on, and each message
// published while the bus was down is delivered once or reported to the
// publisher as undelivered, never both, never neither.
func TestReconnectExampleFollowsAKill(t *testing.T) {
	restartScenario(t, false, func(b *bustest.Busd) {
		b.Signal(t, syscall.SIGKILL)
		b.WaitExit(t, 10*time.Second) // killed: the error says so
	})
}

// The same across a graceful restart (SIGTERM): in addition, what the
// publisher sent and the broker accepted before it stopped reaches the
// subscribers, though they had not read it when the broker was told to
// stop.
func TestReconnectExampleFollowsAGracefulRestart(t *testing.T) {
	restartScenario(t, true, func(b *bustest.Busd) {
		b.Signal(t, syscall.SIGTERM)
		if err := b.WaitExit(t, 10*time.Second); err != nil {
			t.Fatalf("busd after SIGTERM: %v", err)
		}
	})
}

// restartScenario runs the processes across a restart made by stop. With
// graceful, the broker is stopped as soon as it has handled the first
// messages; else only once they have reached their subscribers (a broker
// killed loses what it held).
func restartScenario(t *testing.T, graceful bool, stop func(*bustest.Busd)) {
	b := bustest.Start(t, binDir)
	env := b.Env()
	sub := startRole(t, env, "sub", "feed")
	worker := startRole(t, env, "worker", "jobs", "workers")
	replier := startRole(t, env, "reply", "svc")
	late := startRole(t, env, "sub", "late") // leaves while the bus is down: its messages then reach nobody
	pub := startRole(t, env, "pub", "feed", "jobs", "late")
	req := startRole(t, env, "req", "svc")
	all := []*role{sub, worker, replier, late, pub, req}

	// Before: the broker has handled every publish (the PONG of "flush");
	// stopped gracefully, it delivers them though the subscribers may not
	// have read them yet.
	req.send(t, "a")
	req.await(t, "answer re: a")
	pub.send(t, numbers(1, 10)...)
	pub.send(t, "flush")
	pub.await(t, "flushed")
	received := func() {
		for _, n := range numbers(1, 10) {
			sub.await(t, "got feed "+n)
			worker.await(t, "got jobs "+n)
		}
	}
	if !graceful {
		received()
	}
	stop(b)
	for _, r := range all {
		r.await(t, "disconnected")
	}
	if graceful {
		received()
	}

	// While the bus is down: publishes are buffered, a request waits.
	interrupt(t, late.cmd)
	for _, n := range numbers(11, 20) {
		pub.send(t, n)
		for _, topic := range []string{"feed", "jobs", "late"} {
			pub.await(t, "published "+topic+" "+n)
		}
	}
	req.send(t, "b")
	bustest.StartWith(t, binDir, bustest.Options{Dir: b.Dir})
	for _, r := range all {
		if r != late {
			r.await(t, "subscriptions in place")
		}
	}
	if got := req.await(t, "answer re: b", "failed b:"); !strings.HasPrefix(got, "answer") && !strings.Contains(got, "no responders") {
		t.Errorf("the request made while the bus was down: %q; want its answer, or no responders (the replier was not back yet)", got)
	}
	pub.send(t, "flush") // every receipt for the buffered messages has come
	pub.await(t, "flushed")
	for _, n := range numbers(11, 20) { // the one path no race decides
		pub.await(t, "undelivered late "+n+": ")
	}
	late = startRole(t, env, "sub", "late")

	// After: everyone is back.
	pub.send(t, numbers(21, 30)...)
	for _, n := range numbers(21, 30) {
		sub.await(t, "got feed "+n)
		worker.await(t, "got jobs "+n)
		late.await(t, "got late "+n)
	}
	req.send(t, "c")
	req.await(t, "answer re: c")

	pub.in.Close()
	req.in.Close()
	for _, r := range []*role{pub, req} {
		waitExit(t, r.cmd)
	}
	for _, r := range []*role{sub, worker, replier, late} {
		interrupt(t, r.cmd)
	}

	// The accounts, once every process has exited and said all it had to.
	for i := 1; i <= 30; i++ {
		for _, c := range []struct {
			topic string
			by    *role
		}{{"feed", sub}, {"jobs", worker}} {
			got := c.by.count(fmt.Sprintf("got %s %d", c.topic, i))
			reported := pub.count(fmt.Sprintf("undelivered %s %d: ", c.topic, i))
			switch down := i > 10 && i <= 20; {
			case down && got+reported != 1:
				t.Errorf("message %d on %s, published while the bus was down: delivered %d times, reported undelivered %d times; want one of the two, once",
					i, c.topic, got, reported)
			case !down && (got != 1 || reported != 0):
				t.Errorf("message %d on %s, published while everyone was connected: delivered %d times, reported %d times; want delivered once",
					i, c.topic, got, reported)
			}
		}
	}
	for _, c := range []struct {
		topic string
		by    *role
	}{{"feed", sub}, {"jobs", worker}} {
		got, reported := c.by.count("got "), pub.count("undelivered "+c.topic+" ")
		if got+reported != 30 {
			t.Errorf("%s got %d messages and %d were reported undelivered; 30 were sent", c.by.name, got, reported)
		}
	}
	if n := pub.count("failed "); n != 0 {
		t.Errorf("%d publishes failed; the buffer had room for all", n)
	}
}
