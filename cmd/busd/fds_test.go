package main

// Descriptors: what clients send is installed only within their user's
// budget, what is queued is bounded per receiver, and nothing a client
// passes can make the broker hold itself (docs/SECURITY.md,
// "Descriptors").

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// fdLimit is the RLIMIT_NOFILE the descriptor floods run busd with: far
// below what the attackers send (40 × 506 = 20240), so that a broker that
// installed what it is sent would run out, whatever the machine's default.
// busd's budgets follow: MaxFDs 8128, a user's input descriptors 2032.
const fdLimit = 8192

// userFDShare is the most of the broker's descriptors (MaxFDs, fdLimit
// less 64) one user may hold: half, when it is the only user holding some
// (docs/SECURITY.md, "Users share the broker fairly"). Everything a user's
// connections make the broker hold counts in it: the connections
// themselves, descriptors received, queued, and waiting to be closed.
const userFDShare = (fdLimit - 64) / 2

// Forty connections each send 506 or 507 descriptors attached to PINGs,
// which no frame claims: the broker installs none beyond its user's
// budget and never nears its descriptor limit; each offender gets an ERR
// over budget, too many fds (more than 506 unclaimed) or timeout (506
// left unclaimed past -frame-timeout), naming the limit, and once they
// are closed the broker is back at its baseline.
func TestUnclaimedDescriptorFlood(t *testing.T) {
	t.Parallel() // it mostly waits for a timeout: see the file comment of main_test.go
	b := start(t, bustest.Options{NoFile: fdLimit, Args: []string{"-frame-timeout", "1s"}})
	if soft, _ := b.FDLimit(t); soft != fdLimit {
		t.Fatalf("busd runs with RLIMIT_NOFILE %d; want %d", soft, fdLimit)
	}
	fd := memfd(t)
	defer unix.Close(fd)
	peak := sampleFDs(b.PID())
	const attackers = 40
	conns := make([]*bustest.RawConn, attackers)
	sentNone, cutShort := 0, 0
	for i := range conns {
		c := b.Connect(t, fmt.Sprintf("fds-%d", i))
		conns[i] = c
		sends := []int{253, 253} // 506: the most that may wait unclaimed
		if i%2 == 1 {
			sends = append(sends, 1) // one more than that
		}
		for j, n := range sends {
			// The broker may have closed the connection already (over
			// budget), and the kernel bounds the descriptors a user
			// without CAP_SYS_RESOURCE has in flight (ETOOMANYREFS):
			// either ends the attack on this connection.
			err := c.Write(wire.AppendControl(nil, wire.OpPing, uint32(j), nil), repeat(fd, n)...)
			switch {
			case err == nil:
				continue
			case j > 0:
				cutShort++ // what was sent has its ERR
			case errors.Is(err, syscall.ETOOMANYREFS):
				sentNone++ // the kernel refused: the broker has nothing to answer
				c.Close()
				conns[i] = nil
			default:
				t.Fatalf("attacker %d: %v", i, err)
			}
			break
		}
	}
	codes := map[wire.Code]int{}
	unnamed := map[wire.Code]string{} // an ERR text of each code that does not name its limit
	for i, c := range conns {
		if c == nil {
			continue
		}
		e, err := expectErrIn(c)
		if err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		codes[e.Code]++
		if !namesFDLimit(e) {
			unnamed[e.Code] = e.Text
		}
		if err := closedAfter(c); err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		c.Close()
	}
	most := peak.stop()
	t.Logf("ERRs: %d over budget, %d too many fds, %d timeout; %d attacks cut short, %d refused by the kernel; busd had at most %d descriptors open (baseline %d, limit %d)",
		codes[wire.CodeBudget], codes[wire.CodeTooManyFDs], codes[wire.CodeTimeout], cutShort, sentNone, most, b.fds, fdLimit)
	for code, text := range unnamed {
		t.Errorf("ERR %v does not name the limit and its value: %q", code, text)
	}
	if other := attackers - sentNone - codes[wire.CodeBudget] - codes[wire.CodeTooManyFDs] - codes[wire.CodeTimeout]; other > 0 {
		t.Errorf("%d attackers got other ERRs than over budget, too many fds and timeout", other)
	}
	if codes[wire.CodeBudget] == 0 {
		t.Error("no attacker was refused over budget: 20240 descriptors fit a budget of 2032?")
	}
	if held := most - b.fds; held > userFDShare {
		t.Errorf("busd held %d descriptors for one user; its share is %d", held, userFDShare)
	}
	if strings.Contains(b.Log(), "accept failed") {
		t.Error("busd ran out of descriptors to accept with")
	}
	b.after()
}

// Descriptors attached to PINGs, which no frame claims, from connections
// that then simply close: nine times 253, more than the user's budget of
// 2032 if what the broker closes for a closed connection were still
// charged to its user. It is not: the user can pass descriptors after.
func TestUnclaimedDescriptorsThenExit(t *testing.T) {
	b := start(t, bustest.Options{NoFile: fdLimit})
	fd := memfd(t)
	defer unix.Close(fd)
	for i := range 9 {
		c := b.Connect(t, fmt.Sprintf("exits-%d", i))
		c.Send(wire.AppendControl(nil, wire.OpPing, 1, nil), repeat(fd, 253)...)
		if f := c.Next(); f.Op != wire.OpPong {
			e, _ := bustest.DecodeErr(f)
			t.Fatalf("connection %d, after %d descriptors left unclaimed by closed connections: got %v %v %q; want PONG",
				i, i*253, f.Op, e.Code, e.Text)
		}
		c.Close()
		b.WaitFDsWithin(t, b.fds, settleTimeout) // the broker has closed them
	}
	b.after()
}

// namesFDLimit reports whether an attacker's ERR names the limit it ran
// into and the limit's value, as docs/SECURITY.md promises.
func namesFDLimit(e wire.Error) bool {
	var want []string
	switch e.Code {
	case wire.CodeBudget: // the user's input descriptors (2032) or its share of the broker's (8128)
		want = []string{"budget", "2032|8128"}
	case wire.CodeTooManyFDs:
		want = []string{"no frame has claimed", "506"}
	case wire.CodeTimeout:
		want = []string{"no frame claimed them", "1s"}
	default:
		return true // counted as another ERR
	}
	for _, w := range want {
		if !containsAny(e.Text, strings.Split(w, "|")) {
			return false
		}
	}
	return true
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Six subscribers that never read, fed messages each carrying 64
// descriptors: what the broker holds for them is bounded (by their
// queues' descriptor limits, and in all by their user's share of the
// broker's descriptors, which the test checks), not by the 12800 sent,
// and goes when they do.
func TestDescriptorsForStoppedSubscribers(t *testing.T) {
	b := start(t, bustest.Options{NoFile: fdLimit, Args: []string{"-write-timeout", "1m"}})
	const subscribers = 6
	subs := make([]*bustest.RawConn, subscribers)
	for i := range subs {
		subs[i] = b.Subscribe(t, fmt.Sprintf("stopped-%d", i), "fds", "", 0)
	}
	pub := b.Connect(t, "publisher")
	fd := memfd(t)
	defer unix.Close(fd)
	peak := sampleFDs(b.PID())
	const messages = 200 // 12800 descriptors
	for i := range messages {
		pub.Pub("fds", numbered(i, 16), repeat(fd, 64)...)
	}
	pub.Sync()
	queued := b.FDs(t)
	for _, c := range subs {
		c.Close()
	}
	pub.Close()
	b.WaitFDsWithin(t, b.fds, settleTimeout)
	most := peak.stop()
	t.Logf("sent %d descriptors; busd had at most %d open (%d once the publisher's PONG came; baseline %d, limit %d)",
		messages*64, most, queued, b.fds, fdLimit)
	if held := most - b.fds; held > userFDShare {
		t.Errorf("busd held %d descriptors for one user's stopped subscribers; its share is %d", held, userFDShare)
	}
	b.after()
}

// A client that passes its own connection to the broker through the
// broker, to a subscriber that never reads, and exits: the broker refuses
// the descriptor (the reference cycle of dbus CVE-2014-3637), delivers
// nothing, and holds nothing afterwards. Another client's connection is
// refused the same way; a socket that is not the broker's goes through.
func TestOwnConnectionThroughTheBroker(t *testing.T) {
	b := start(t, bustest.Options{})
	stopped := b.Subscribe(t, "stopped", "sock", "", 0)
	c := b.Connect(t, "cycle")
	other := b.Connect(t, "other")
	for _, victim := range []*bustest.RawConn{c, other} {
		f, err := victim.Sock.File()
		if err != nil {
			t.Fatal(err)
		}
		c.Pub("sock", []byte("a connection to the broker"), int(f.Fd()))
		f.Close()
		c.ExpectErr(wire.CodeRefusedFD, "connected to this broker")
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Pub("sock", []byte("a pair"), pair[0])
	unix.Close(pair[0])
	unix.Close(pair[1])
	c.Sync()
	c.Close() // the client exits
	other.Close()
	if f := stopped.Next(); f.Op != wire.OpMsg || string(f.Payload) != "a pair" || f.NFDs != 1 {
		t.Fatalf("the subscriber got %v %q with %d descriptors; want only the pair's end", f.Op, f.Payload, f.NFDs)
	}
	stopped.Sync() // nothing else was queued for it
	stopped.Close()
	b.after()
}
