package bus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

func testLedger(edit func(*Config)) *ledger {
	cfg := DefaultConfig()
	cfg.MaxMemory = 1000
	cfg.MaxFDs = 1000
	if edit != nil {
		edit(&cfg)
	}
	return newLedger(&cfg)
}

// The fair-share rule: after a charge a user holds at most 1/(n+1) of
// what is left, n counting the users holding some. Alone, a user gets
// half of the pool; the next one a third of what is left; a user that
// holds nothing still gets something.
func TestPoolsAreSharedFairly(t *testing.T) {
	l := testLedger(nil)
	a, b, c := l.open(1), l.open(2), l.open(3)
	take := func(u *account, n int64) refusal { return l.try(u, kInput, n) }
	if got := take(a, 501); got != refusedPool {
		t.Fatalf("alone, a took more than half the pool: %v", got)
	}
	if got := take(a, 500); got != granted {
		t.Fatalf("alone, a could not take half the pool: %v", got)
	}
	// 500 left, two holders once b holds some: b may hold a third of it.
	if got := take(b, 167); got != refusedPool {
		t.Fatalf("b took more than its share: %v", got)
	}
	if got := take(b, 166); got != granted {
		t.Fatalf("b could not take its share: %v", got)
	}
	if got := take(c, 1); got != granted {
		t.Fatalf("a user holding nothing got nothing: %v", got)
	}
	l.uncharge(a, kInput, 500)
	if got := take(a, 100); got != granted {
		t.Fatalf("after giving back, a could not take a little: %v", got)
	}
	if u := l.usage(); u.memory != 100+166+1 || u.hits != 2 {
		t.Fatalf("usage %+v; want 267 bytes held and 2 refusals counted", u)
	}
}

// A user's own budget is checked before the pools, and the error names
// it with its value.
func TestChargeNamesTheBudget(t *testing.T) {
	l := testLedger(func(c *Config) { c.MaxMemory = 1 << 40; c.User.Input = 10 })
	a := l.open(1000)
	if err := l.charge(a, kInput, 10); err != nil {
		t.Fatal(err)
	}
	err := l.charge(a, kInput, 1)
	var be *budgetError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "uid 1000's input bytes budget is 10") {
		t.Fatalf("got %v; want uid 1000's input bytes budget named", err)
	}
}

// Descriptor reservations take what the budget and the fair share allow,
// and the accounts forget a user once it holds nothing.
func TestFDReservations(t *testing.T) {
	l := testLedger(func(c *Config) { c.User.InputFDs = 100 })
	a := l.open(7)
	if got := l.reserveFDs(a, 253); got != 100 {
		t.Fatalf("reserved %d; want the budget's 100", got)
	}
	if got := l.reserveFDs(a, 253); got != 0 {
		t.Fatalf("reserved %d over a spent budget", got)
	}
	l.uncharge(a, kInputFDs, 100)
	l.close(a)
	if len(l.users) != 0 {
		t.Fatalf("%d accounts left after the last connection gave everything back", len(l.users))
	}
}

// A user whose passed descriptors fill its share of the pool is told to
// wait, with a channel closed when descriptors go back to the pool; one
// that holds only its connections' own is not, however little room.
func TestFDRoomWaitsForPassedDescriptors(t *testing.T) {
	l := testLedger(func(c *Config) { c.MaxFDs, c.User.InputFDs = 1000, 1000 })
	a := l.open(7)
	if err := l.charge(a, kConns, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.takeFixed(a, poolFDs, fdsPerConn); err != nil {
		t.Fatal(err)
	}
	if got := l.reserveFDs(a, 400); got != 400 {
		t.Fatalf("reserved %d; want 400", got)
	}
	ok, freed := l.fdRoom(a, 253) // alone, a user may hold half the pool: 98 more
	if ok || freed == nil {
		t.Fatalf("room for 253 more (%v), a wait: %v; want no room and a wait", ok, freed != nil)
	}
	select {
	case <-freed:
		t.Fatal("the wait ended before anything went back to the pool")
	default:
	}
	l.uncharge(a, kInputFDs, 200)
	<-freed
	if ok, _ := l.fdRoom(a, 253); !ok {
		t.Fatal("no room for 253 once 200 of 400 went back")
	}
	if got := l.reserveFDs(a, 250); got != 250 { // a holds 452 of the 1000
		t.Fatalf("reserved %d; want 250", got)
	}
	b := l.open(8)
	for _, err := range []error{l.charge(b, kConns, 1), l.takeFixed(b, poolFDs, fdsPerConn)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if l.roomLocked(b, poolFDs) >= 253 {
		t.Fatalf("b has room for %d; the test wants less than a read's worth", l.roomLocked(b, poolFDs))
	}
	if ok, freed := l.fdRoom(b, 253); !ok || freed != nil {
		t.Fatal("a user holding only its connections' descriptors was told to wait")
	}
}

func TestUserConnectionBudget(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Conns = 2 })
	connectRaw(t, path)
	connectRaw(t, path)
	extra := dialRaw(t, path)
	extra.expectErr(wire.CodeTooManyConns, "connections budget is 2")
	extra.expectClosed()
}

// Connections that never say HELLO count against their user's handshake
// budget until they do (or time out): the user cannot fill the broker
// with half-open connections.
func TestUserHandshakeBudget(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Handshakes = 1 })
	silent := dialRaw(t, path)
	extra := dialRaw(t, path)
	extra.expectErr(wire.CodeTooManyConns, "connections in handshake budget is 1")
	silent.sock.Close()
	waitFor(t, "the silent connection to be forgotten", func() bool {
		c := dialRaw(t, path)
		defer c.sock.Close()
		// Refused while the silent one still counts: the broker may have
		// closed the probe before its HELLO is written, so a failed write
		// is an answer too; what it reads first says which.
		body, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version})
		c.sock.WriteWithFDs(wire.AppendControl(nil, wire.OpHello, 0, body), nil)
		f, err := c.tryNext(5 * time.Second)
		return err == nil && f.Op == wire.OpInfo
	})
}

func TestUserSubscriptionBudget(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Subs = 2 })
	a, b := connectRaw(t, path), connectRaw(t, path)
	a.sub(1, "x", "")
	a.sync()
	b.sub(1, "y", "")
	b.sub(2, "z", "")
	b.expectErr(wire.CodeTooManySubs, "subscriptions budget is 2")
	a.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	a.sync()
	b.sub(2, "z", "") // room again
	b.sync()
}

// One connection may not hold the same pattern and group twice: every
// publish to it would cost twice (and twenty thousand times, with twenty
// thousand). A different policy is a different subscription.
func TestDuplicateSubscriptionsAreRefused(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.sub(1, "a.>", "")
	c.sub(2, "a.>", "")
	c.expectErr(wire.CodeDuplicateSub, `already subscribes to "a.>" with the same policy, as id 1`)
	c.sub(3, "a.>", "g")
	c.send(wire.AppendSub(nil, 4, "a.>", "", wire.SubDisconnect))
	c.sub(5, "a.>", "g")
	c.expectErr(wire.CodeDuplicateSub, `"a.>" in queue group g`)
	c.pub("a.b", "x")
	ids := map[uint32]bool{}
	for range 3 {
		f := c.next()
		ids[f.ID] = true
	}
	if !ids[1] || !ids[3] || !ids[4] {
		t.Fatalf("deliveries to %v; want subscriptions 1, 3 and 4", ids)
	}
}

// A user's account outlives its last connection while that connection's
// descriptors wait for the closer, and is forgotten when they come back.
func TestAccountForgottenWhenItsLastHoldingsReturn(t *testing.T) {
	l := testLedger(nil)
	a := l.open(7)
	if got := l.reserveFDs(a, 10); got != 10 {
		t.Fatalf("reserved %d; want 10", got)
	}
	l.handOver(a, kInputFDs, 10) // routed: still in the pool until closed
	l.close(a)
	if l.usage().users != 1 {
		t.Fatal("the account was forgotten while its descriptors were open")
	}
	l.give(a, poolFDs, 10) // the closer closed them
	if u := l.usage().users; u != 0 {
		t.Fatalf("%d accounts after the last descriptor came back; want 0", u)
	}
}
