package bus

// Where names meet retained values, wills, monitors, activation and
// shutdown: the cases a hostile user tries once the features are together.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// A name's topics reach only its owner: a retained value there would be
// handed to any retained-first subscription (">" included) and listed by
// $SYS.req.retained, whoever owns the name. So a retained PUB to a
// "_NAME." topic is refused like one to an inbox, and so is a will that
// would be retained there.
func TestRetainedRefusedOnNameTopics(t *testing.T) {
	_, path := testBroker(t, nil)
	owner := nameClient(t, path, "owner")
	owner.requestName("svc", 0, wire.NamePrimaryOwner)
	owner.sub(1, "_NAME.svc.>", "")
	owner.sync()

	owner.retain("_NAME.svc.state", "secret")
	owner.expectErr(wire.CodeRetainRefused, "keep no retained value")
	owner.sync()

	stranger := connectRaw(t, path)
	stranger.subRetained(1, ">", 0)
	stranger.quiet() // no value from the name's topic

	w := connectRaw(t, path)
	if st, why := w.setWill(&wire.WillRequest{Topic: "_NAME.svc.state", Payload: []byte("x"), Retain: true}); st != wire.StatusBadRequest {
		t.Fatalf("retained will on a name's topic answered %q %q; want 400", st, why)
	}
	if st, why := w.setWill(&wire.WillRequest{Topic: "_NAME.svc.state", Payload: []byte("x")}); st != "" {
		t.Fatalf("plain will on a name's topic answered %q %q; want it set", st, why)
	}
}

// A connection that owns a name and leaves a will about it has the will
// published before its name goes to the next in the queue: a watcher sees
// the will, then the owner event, and a successor that publishes its own
// retained state on taking the name is not overwritten by the stale will.
func TestWillBeforeNameHandover(t *testing.T) {
	_, path := testBroker(t, nil)
	w := connectRaw(t, path)
	w.sub(1, "svc.status", "")
	w.sub(2, wire.SysNameOwner+"svc", "")
	w.sync()

	old := connectRaw(t, path)
	if st, why := old.setWill(&wire.WillRequest{Topic: "svc.status", Payload: []byte("offline"), Retain: true}); st != "" {
		t.Fatalf("will refused: %s %s", st, why)
	}
	old.sub(100, old.inbox(">"), "")
	old.requestName("svc", 0, wire.NamePrimaryOwner)
	nextNameEvent(t, w, "svc")
	next := nameClient(t, path, "next")
	next.requestName("svc", 0, wire.NameInQueue)

	old.sock.Close()
	w.expectValue(1, "svc.status", "offline", false)
	if ev := nextNameEvent(t, w, "svc"); connOf(ev.New) != next.info.ConnID {
		t.Fatalf("owner event to conn %d; want %d", connOf(ev.New), next.info.ConnID)
	}
}

// One user cannot take the activation bounds from the others: its
// requests held for one name, for all names, and the activations they
// start that are pending are each bounded per uid, below the bounds of
// everyone; another uid's requests are still held.
func TestActivationBoundsPerUser(t *testing.T) {
	names := []string{"s0", "s1", "s2", "s3", "s4", "s5", "other"}
	act := newFakeActivator(names...)
	srv, path := testBroker(t, func(c *Config) {
		c.Activator = act
		c.ActivationTimeout = time.Minute
		withPolicy(t, "allow uid 4321 publish,subscribe >")(c)
	})
	p := nameClient(t, path, "p")
	for i := range maxHeldPerUserName {
		p.send(wire.AppendPub(nil, wire.NamePrefix+"s0", p.inbox(fmt.Sprint("a", i)), nil, nil, 0))
	}
	waitName(t, act.started, "s0")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"s0", p.inbox("over"), nil, nil, 0))
	p.expectStatus(p.inbox("over"), wire.StatusNoResponders, "already wait for the activation of s0, the limit")

	// Another uid's request to the same name is held.
	q := dialAs(t, path, 4321)
	q.sub(1, q.inbox(">"), "")
	q.send(wire.AppendPub(nil, wire.NamePrefix+"s0", q.inbox("r"), nil, nil, 0))
	q.sync()

	// Pending activations started by one uid are bounded.
	for i := 1; i < maxStartsPerUser; i++ {
		name := fmt.Sprint("s", i)
		for j := range maxHeldPerUserName {
			p.send(wire.AppendPub(nil, wire.NamePrefix+name, p.inbox(fmt.Sprint(name, ".", j)), nil, nil, 0))
		}
		waitName(t, act.started, name)
	}
	p.send(wire.AppendPub(nil, wire.NamePrefix+"s4", p.inbox("s4"), nil, nil, 0))
	p.expectStatus(p.inbox("s4"), wire.StatusNoResponders, "started 4 activations that are pending, the limit")
	p.sync()
	srv.names.mu.Lock()
	held := srv.names.heldByUID[uint32(os.Getuid())]
	srv.names.mu.Unlock()
	if held != maxHeldPerUser {
		t.Fatalf("uid holds %d requests; want %d", held, maxHeldPerUser)
	}
	// The other uid still starts one (the bound of all held requests is
	// far).
	q.send(wire.AppendPub(nil, wire.NamePrefix+"other", q.inbox("o"), nil, nil, 0))
	waitName(t, act.started, "other")
	q.quiet()

	// A failed activation gives its starter's count back.
	act.fail("s1", errors.New("exit status 1"))
	for j := range maxHeldPerUserName {
		p.expectStatus(p.inbox(fmt.Sprint("s1.", j)), wire.StatusNoResponders, "exit status 1")
	}
	p.send(wire.AppendPub(nil, wire.NamePrefix+"s4", p.inbox("s4"), nil, nil, 0))
	waitName(t, act.started, "s4")
	// At its bound of starts, a request to a topic under a name being
	// activated joins it (the longer names are not tried).
	p.send(wire.AppendPub(nil, wire.NamePrefix+"s4.call", p.inbox("join"), nil, nil, 0))
	// Its held requests over the uid's bound are refused with a reason.
	// (48 held for s0, s2, s3; two for s4.)
	for j := range maxHeldPerUserName - 1 {
		p.send(wire.AppendPub(nil, wire.NamePrefix+"s4", p.inbox(fmt.Sprint("x", j)), nil, nil, 0))
	}
	p.expectStatus(p.inbox(fmt.Sprint("x", maxHeldPerUserName-2)), wire.StatusNoResponders, "already wait for activations 64 times, the limit")
}

// An activation that ended keeps none of its held requests: the
// Activator may keep its failed callback (and with it the activation)
// while the service runs without its name, each timeout adding one.
func TestEndedActivationKeepsNoRequests(t *testing.T) {
	act := newFakeActivator("svc")
	srv, path := testBroker(t, func(c *Config) { c.Activator = act; c.ActivationTimeout = 50 * time.Millisecond })
	p := nameClient(t, path, "p")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("a"), nil, make([]byte, 1000), 0))
	waitName(t, act.started, "svc")
	p.sync()
	srv.names.mu.Lock()
	h := weak.Make(srv.names.names["svc"].act.held[0])
	srv.names.mu.Unlock()
	p.expectStatus(p.inbox("a"), wire.StatusNoResponders, "no owner in time")
	// The answer is queued from within the timer's loop over the held
	// requests, under the registry's lock: once the lock is free again,
	// the loop, and its hold on the request, is over.
	waitFor(t, "the activation to end", func() bool {
		srv.names.mu.Lock()
		defer srv.names.mu.Unlock()
		e := srv.names.names["svc"]
		return e == nil || e.act == nil
	})
	runtime.GC()
	if h.Value() != nil {
		t.Fatal("the held request is still reachable after its activation ended")
	}
	act.mu.Lock()
	defer act.mu.Unlock()
	if act.failed["svc"] == nil {
		t.Fatal("the Activator dropped its callback")
	}
}

// A monitor the policy does not let monitor a name's topics gets none of
// its messages, those with descriptors (which monitors get as a copy
// without them) and those with a Bus-FDs header included.
func TestMonitorCopyOfNamedMessageStaysWithTheOwner(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "allow uid %me monitor _NAME.x.m"))
	owner := nameClient(t, path, "owner")
	owner.requestName("svc", 0, wire.NamePrimaryOwner)
	owner.sub(1, wire.NamePrefix+"svc", "")
	owner.sync()
	mon := connectRaw(t, path)
	mon.send(wire.AppendSub(nil, 1, ">", "", wire.SubMonitor))
	mon.sync()

	p := connectRaw(t, path)
	f := memfdWith(t, "file to open")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", "", nil, []byte("with fd"), 1), int(f.Fd()))
	f.Close() // the broker's copy is what is routed
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", "", wire.AppendField(nil, wire.FDsHeader, "1"), []byte("forged"), 0))
	p.sync()
	for _, want := range []string{"with fd", "forged"} {
		g := owner.next()
		if g.Op != wire.OpMsg || string(g.Payload) != want {
			t.Fatalf("owner got %v %q; want %q", g.Op, g.Payload, want)
		}
		if g.NFDs > 0 {
			fds, err := owner.sock.TakeFDs(int(g.NFDs))
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	mon.quiet()
}

// A will to the topic of a name its connection owns reaches nobody: the
// connection still owns the name when the will is routed, and has no
// subscription left (PROTOCOL.md section 3.5).
func TestWillToOwnNameReachesNobody(t *testing.T) {
	_, path := testBroker(t, nil)
	old := connectRaw(t, path)
	if st, why := old.setWill(&wire.WillRequest{Topic: "_NAME.svc.gone", Payload: []byte("bye")}); st != "" {
		t.Fatalf("will refused: %s %s", st, why)
	}
	old.sub(100, old.inbox(">"), "")
	old.requestName("svc", 0, wire.NamePrimaryOwner)
	next := nameClient(t, path, "next")
	next.sub(1, "_NAME.svc.>", "")
	next.requestName("svc", 0, wire.NameInQueue)
	w := subscriber(t, path, "$SYS.conn.down.>")
	old.sock.Close()
	nextConnEvent(t, w, wire.SysConnDown, old)
	next.quiet()
}

// Shutdown with requests held for an activation and a will set: the
// requests are dropped with their descriptors, the activation's timer and
// counts end, and no will is published.
func TestShutdownWithHeldRequests(t *testing.T) {
	base := countFDs(t)
	act := newFakeActivator("svc")
	srv, path := testBroker(t, func(c *Config) { c.Activator = act; c.ActivationTimeout = time.Minute })
	p := nameClient(t, path, "p")
	f := memfdWith(t, "held")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("r"), nil, nil, 1), int(f.Fd()))
	f.Close()
	waitName(t, act.started, "svc")
	p.sync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv.names.mu.Lock()
	held, names, started, byUID := srv.names.held, len(srv.names.names), len(srv.names.startedBy), len(srv.names.heldByUID)
	srv.names.mu.Unlock()
	if held != 0 || names != 0 || started != 0 || byUID != 0 {
		t.Fatalf("after Shutdown: %d held, %d names, %d uids starting, %d uids holding", held, names, started, byUID)
	}
	p.sock.Close()
	waitFDs(t, base)
}

// A service that takes its name after the broker stopped waiting for it
// (its activation timed out) is still reported Owned: otherwise the
// Activator counts it as starting for as long as it runs, one of the 16
// starts lost for everyone, and reports its eventual exit as a failed
// activation.
func TestOwnedAfterActivationTimeout(t *testing.T) {
	act := newFakeActivator("svc")
	_, path := testBroker(t, func(c *Config) { c.Activator = act; c.ActivationTimeout = 50 * time.Millisecond })
	p := nameClient(t, path, "p")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("a"), nil, nil, 0))
	waitName(t, act.started, "svc")
	p.expectStatus(p.inbox("a"), wire.StatusNoResponders, "no owner in time")
	svc := nameClient(t, path, "svc")
	svc.requestName("svc", 0, wire.NamePrimaryOwner)
	waitName(t, act.owned, "svc")
}
