package main

// Connections and subscriptions: one user cannot take the broker's
// connections, duplicate subscriptions are refused, and a connection with
// tens of thousands of subscriptions neither wedges routing while it holds
// them nor while they are removed (docs/SECURITY.md, "Who pays for what"
// and "Choices, and why").

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
)

// The uid test runs its attacker as a child process of the test binary,
// under another uid: TestMain runs runAttacker instead of the tests when
// attackerEnv is set.
const (
	attackerEnv = "BUSD_TEST_ATTACKER_SOCKET"
	otherUID    = 65534 // nobody
)

// attackReport is what the attacker tells the test, one JSON line.
type attackReport struct {
	Opened int        // connections accepted before the refusal
	Err    wire.Error // the refusal
	Fail   string     // what went wrong instead, if anything did
}

// runAttacker opens connections to the socket named in attackerEnv until
// one is refused, reports on stdout, and holds the others until stdin
// ends.
func runAttacker() int {
	var rep attackReport
	var held []*bustest.RawConn
	for len(held) < 100_000 {
		c, err := bustest.DialRaw(os.Getenv(attackerEnv))
		if err != nil {
			rep.Fail = err.Error()
			break
		}
		var we *wire.Error
		if err := c.Hello("attacker"); errors.As(err, &we) {
			rep.Err = *we
			break
		} else if err != nil {
			rep.Fail = err.Error()
			break
		}
		held = append(held, c)
	}
	rep.Opened = len(held)
	json.NewEncoder(os.Stdout).Encode(&rep)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// One user opening connections until refused is refused with an ERR
// naming its connection budget (half of -max-conns), and a client of
// another user still connects. Run as root, the attacker is uid 65534 and
// the test's own client the other user; otherwise the test can only check
// the same-uid half, and says so.
func TestOneUserTakesItsShareOfConnections(t *testing.T) {
	b := start(t, bustest.Options{Shared: true, Args: []string{"-max-conns", "64"}})
	if os.Getuid() != 0 {
		t.Log("not root: the attacker runs as the test's own uid; that another uid still connects is not checked")
		sameUIDConnections(t, b)
		return
	}
	cmd := attackerAs(t, b.Socket(), otherUID)
	attacker := startChild(t, cmd)
	var rep attackReport
	attacker.report(t, &rep)
	t.Logf("uid %d: %d connections, then ERR %v %q", otherUID, rep.Opened, rep.Err.Code, rep.Err.Text)
	want := fmt.Sprintf("uid %d's connections budget is 32", otherUID)
	if rep.Fail != "" || rep.Err.Code != wire.CodeTooManyConns || !containsAll(rep.Err.Text, want) || rep.Opened != 32 {
		t.Fatalf("the attacker got %+v; want 32 connections, then ERR too many connections naming %q", rep, want)
	}
	held := b.FDs(t)
	b.serves() // the test's uid, while the attacker holds all it may
	t.Logf("with the attacker's connections held busd has %d descriptors (baseline %d)", held, b.fds)
	attacker.end(t, cmd)
	b.after()
}

// attackerAs returns the command that runs this test binary as the
// attacker, as uid, against the socket at path.
func attackerAs(t *testing.T, path string, uid uint32) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(runnableCopy(t, self))
	cmd.Dir = "/"
	cmd.Env = []string{attackerEnv + "=" + path}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd
}

// sameUIDConnections is the uid test for a test that is not root: the
// test's own connections until refused, and room again once one goes.
func sameUIDConnections(t *testing.T, b *target) {
	var held []*bustest.RawConn
	for {
		c := b.Dial(t)
		var we *wire.Error
		err := c.Hello("attacker")
		if errors.As(err, &we) {
			want := fmt.Sprintf("uid %d's connections budget is 32", os.Getuid())
			if we.Code != wire.CodeTooManyConns || !containsAll(we.Text, want) || len(held) != 32 {
				t.Fatalf("after %d connections: ERR %v %q; want too many connections naming %q after 32", len(held), we.Code, we.Text, want)
			}
			c.Close()
			break
		} else if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if len(held) > 1000 {
			t.Fatal("1000 connections of one uid and no refusal")
		}
	}
	for _, c := range held {
		c.Close()
	}
	b.after()
}

// 20,000 subscriptions to ">" on one connection: all but the first are
// refused (duplicate subscription; the ERRs come at the ERR rate bound, so
// the test reads the first few hundred and then closes), and a message to
// it is delivered once, not 20,000 times. Then 30,000 distinct patterns
// are all accepted, and removing them, when their connection closes, does
// not wedge a normal client's round trips. (Distinct queue groups on one
// pattern stop at the uid's budget of them, bus.UserBudget.Groups.)
func TestManySubscriptions(t *testing.T) {
	b := start(t, bustest.Options{})
	dup := b.Connect(t, "duplicates")
	const dups = 20_000
	var subs []byte
	for i := range dups {
		subs = wire.AppendSub(subs, uint32(i+1), ">", "", 0)
	}
	go dup.Write(subs) // the broker reads it slowly; it ends when dup is closed
	const check = 300  // 100 at once, then a millisecond each
	for i := range check {
		e := dup.ExpectErr(wire.CodeDuplicateSub, `already subscribes to ">"`)
		if e.Seq != uint64(i+3) { // HELLO is frame 1, the first SUB 2
			t.Fatalf("ERR %d is about frame %d; want %d", i, e.Seq, i+3)
		}
	}
	pub := b.Connect(t, "publisher")
	pub.Pub("any.topic", []byte("once"))
	pub.Sync()
	for {
		f := dup.Next()
		if f.Op == wire.OpMsg {
			break
		}
	}
	if f := dup.Next(); f.Op != wire.OpErr {
		t.Fatalf("after the message came %v; want the next duplicate's ERR (one subscription, one message)", f.Op)
	}
	b.serves() // others are served while the duplicates are refused
	dup.Close()

	groups := b.Connect(t, "patterns")
	const n = 30_000
	subs = subs[:0]
	for i := range n {
		subs = wire.AppendSub(subs, uint32(i+1), fmt.Sprintf("work.%d.>", i), "", 0)
	}
	groups.Send(subs)
	groups.Sync() // every SUB handled, and none refused: an ERR would come before the PONG
	rt := b.Subscribe(t, "round-trips", "rt", "", 0)
	withGroups := b.FDs(t)
	groups.Close()
	// The removal is over when the broker closes the connection's
	// socket, which it does once every subscription is out of the index.
	var rtts []time.Duration
	for began := time.Now(); len(rtts) == 0 || b.FDs(t) >= withGroups; {
		if time.Since(began) > watchdog {
			t.Fatalf("%d subscriptions not removed within %v", n, watchdog)
		}
		t0 := time.Now()
		rt.Pub("rt", []byte("x"))
		if f := rt.Next(); f.Op != wire.OpMsg {
			t.Fatalf("round trip %d: got %v", len(rtts), f.Op)
		}
		rt.Sync()
		rtts = append(rtts, time.Since(t0))
	}
	t.Logf("round trips while %d subscriptions were removed: %d, slowest %v", n, len(rtts), slices.Max(rtts))
	rt.Close()
	pub.Close()
	b.after()
}
