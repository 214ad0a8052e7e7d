package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The end-to-end tests of requests, replies and queue groups: every
// process a separate `bus`, as in a shell.

func (b *busd) startReply(t *testing.T, args ...string) *proc {
	t.Helper()
	return b.start(t, "bus: replying to", append([]string{"reply"}, args...)...)
}

// req runs `bus req ARGS`, which must succeed, and returns its stdout.
func (b *busd) req(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := b.run(stdin, append([]string{"req"}, args...)...)
	if err != nil {
		t.Fatalf("bus req %q: %v\n%s", args, err, errOut)
	}
	return out
}

func TestCLIReqReplyData(t *testing.T) {
	b := startBusd(t)
	r := b.startReply(t, "svc.echo", "pong")
	for _, stdin := range []string{"", "a request on stdin\n"} {
		if out := b.req(t, stdin, "svc.echo"); out != "pong\n" {
			t.Errorf("reply to %q: got %q, want %q", stdin, out, "pong\n")
		}
	}
	// Without -count it serves until interrupted, and then exits cleanly.
	if out := r.stop(t); out != "" {
		t.Errorf("bus reply wrote %q to stdout", out)
	}
}

// -exec pipes each request through a command; -count 2 ends the replier
// after two replies, not counting a message that wants none.
func TestCLIReplyExecCount(t *testing.T) {
	b := startBusd(t)
	r := b.startReply(t, "-count", "2", "-exec", "tr a-z A-Z", "svc.upper")
	b.pub(t, "", "svc.upper", "no reply wanted")
	if out := b.req(t, "", "svc.upper", "hello"); out != "HELLO\n" {
		t.Errorf("got %q, want %q", out, "HELLO\n")
	}
	if out := b.req(t, "two\nlines\n", "svc.upper"); out != "TWO\nLINES\n" {
		t.Errorf("got %q, want %q", out, "TWO\nLINES\n")
	}
	r.wait(t) // fails the test unless it exits 0 by itself
}

// A failing command is reported, and its output still goes back.
func TestCLIReplyExecFails(t *testing.T) {
	b := startBusd(t)
	b.startReply(t, "-exec", "echo partial; exit 3", "svc.fail")
	if out := b.req(t, "", "svc.fail", "x"); out != "partial\n" {
		t.Errorf("got %q, want %q", out, "partial\n")
	}
}

// -json on both sides: JSON in, msgpack on the bus, the command reading
// and writing JSON, and the same JSON out.
func TestCLIReqReplyJSON(t *testing.T) {
	b := startBusd(t)
	r := b.startReply(t, "-json", "-count", "1", "-exec", "cat", "svc.json")
	const doc = `{"big":18446744073709551615,"n":[1,-2,2.5],"s":"<a&b>"}`
	if out := b.req(t, "", "-json", "-H", "trace=1", "svc.json", doc); out != doc+"\n" {
		t.Errorf("got %q, want %q", out, doc+"\n")
	}
	r.wait(t)
	r = b.startReply(t, "-json", "-count", "1", "svc.fixed", `{"ok":true}`)
	if out := b.req(t, "", "-json", "svc.fixed", "null"); out != `{"ok":true}`+"\n" {
		t.Errorf("got %q, want %q", out, `{"ok":true}`+"\n")
	}
	r.wait(t)
}

// The broker answers a request nobody serves at once: the 30 s timeout is
// longer than the test's context, which would kill a waiting bus req.
func TestCLIReqNoResponders(t *testing.T) {
	b := startBusd(t)
	_, errOut, err := b.run("", "req", "-timeout", "30s", "nobody.home", "x")
	if err == nil || !strings.Contains(errOut, "no responders") {
		t.Fatalf("err %v, stderr %q; want a failure saying no responders", err, errOut)
	}
}

// A subscriber that never answers makes the request time out.
func TestCLIReqTimeout(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-count", "1", "svc.silent")
	_, errOut, err := b.run("", "req", "-timeout", "200ms", "svc.silent", "anyone?")
	if err == nil || !strings.Contains(errOut, `no reply from "svc.silent" within 200ms: timeout`) {
		t.Fatalf("err %v, stderr %q; want a timeout", err, errOut)
	}
	if out := sub.wait(t); !strings.Contains(out, "reply=_INBOX.") || !strings.Contains(out, "anyone?") {
		t.Errorf("the subscriber did not get the request:\n%s", out)
	}
}

// Two members of a queue group share 200 messages: each arrives exactly
// once, at one of them.
func TestCLIQueueSubShare(t *testing.T) {
	b := startBusd(t)
	subs := []*proc{b.startSub(t, "-raw", "-queue", "q", "work"), b.startSub(t, "-raw", "-queue", "q", "work")}
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintln(&in, i)
	}
	b.pub(t, in.String(), "work")
	lines := func() (n int) {
		for _, s := range subs {
			n += strings.Count(s.out.String(), "\n")
		}
		return n
	}
	for lines() < 200 && b.ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	seen := map[int]int{}
	for i, s := range subs {
		out := s.stop(t) // anything extra would have arrived before the exit
		got := strings.Fields(out)
		if len(got) == 0 {
			t.Errorf("member %d got no messages", i)
		}
		for _, f := range got {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 || n >= 200 {
				t.Fatalf("member %d printed %q", i, f)
			}
			seen[n]++
		}
	}
	for i := range 200 {
		if seen[i] != 1 {
			t.Errorf("message %d arrived %d times", i, seen[i])
		}
	}
}

// A queue member that leaves after -count answers what the broker had
// already routed to it: none of the concurrent requests waits out its
// timeout, though one member stops after its first reply.
func TestCLIReplyQueueLeavesWithoutLosing(t *testing.T) {
	b := startBusd(t)
	short := b.startReply(t, "-queue", "g", "-count", "1", "-exec", "sleep 0.2; echo short", "svc.q")
	b.startReply(t, "-queue", "g", "svc.q", "long")
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			out, errOut, err := b.run("", "req", "-timeout", "10s", "svc.q")
			if err == nil && out != "short\n" && out != "long\n" {
				err = fmt.Errorf("reply %q", out)
			}
			if err != nil {
				err = fmt.Errorf("%w: %s", err, errOut)
			}
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	short.wait(t)
}
