package bus

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/busd/busd/bus/wire"
)

// nextConnEvent reads the next frame, which must be the connection event
// on topic prefix+"<uid>.<id>" from the broker, and decodes it.
func nextConnEvent(t testing.TB, w *rawClient, prefix string, about *rawClient) wire.ConnEvent {
	t.Helper()
	f := w.next()
	want := fmt.Sprintf("%s%d.%d", prefix, os.Getuid(), about.info.ConnID)
	if f.Op != wire.OpMsg || string(f.Topic) != want || f.Origin.Conn != 0 || f.Origin.PID != uint32(os.Getpid()) {
		t.Fatalf("got %v %q from %+v; want an event on %q from the broker", f.Op, f.Topic, f.Origin, want)
	}
	var ev wire.ConnEvent
	if err := wire.DecodeBody(f.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ConnID != about.info.ConnID || ev.PID != uint32(os.Getpid()) || ev.UID != uint32(os.Getuid()) || ev.GID != uint32(os.Getgid()) {
		t.Fatalf("event %+v; want conn %d of this process", ev, about.info.ConnID)
	}
	return ev
}

// A watcher of "$SYS.>" as the broker's uid sees each connection come
// and go, with its identity and why it went.
func TestConnEventsSayWhoAndWhy(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { smallQueues(c); c.WriteTimeout = time.Minute })
	w := subscriber(t, path, "$SYS.>")

	normal := connectNamed(t, path, "normal one")
	if ev := nextConnEvent(t, w, wire.SysConnUp, normal); ev.Name != "normal one" || ev.Reason != "" || ev.Since == 0 {
		t.Fatalf("up event %+v", ev)
	}
	normal.sock.Close()
	if ev := nextConnEvent(t, w, wire.SysConnDown, normal); ev.Reason != wire.ReasonNormal || ev.Name != "normal one" {
		t.Fatalf("down event %+v; want reason normal", ev)
	}

	// A client that closes with the broker's frames unread (here a PONG)
	// resets the connection: it went away all the same.
	hasty := connectNamed(t, path, "hasty")
	nextConnEvent(t, w, wire.SysConnUp, hasty)
	hasty.send(wire.AppendControl(nil, wire.OpPing, 1, nil))
	dup, err := hasty.sock.File()
	if err != nil {
		t.Fatal(err)
	}
	readable := []unix.PollFd{{Fd: int32(dup.Fd()), Events: unix.POLLIN}}
	if n, err := unix.Poll(readable, 10000); n != 1 || err != nil { // the PONG is there, unread
		t.Fatalf("poll: %d, %v; want the PONG waiting", n, err)
	}
	dup.Close()
	hasty.sock.Close()
	if ev := nextConnEvent(t, w, wire.SysConnDown, hasty); ev.Reason != wire.ReasonNormal || ev.Text != "" {
		t.Fatalf("down event %+v; want reason normal for a close with frames unread", ev)
	}

	bad := connectNamed(t, path, "bad")
	nextConnEvent(t, w, wire.SysConnUp, bad)
	bad.send(wire.AppendControl(nil, wire.OpInfo, 0, nil)) // INFO is the broker's to send
	if ev := nextConnEvent(t, w, wire.SysConnDown, bad); ev.Reason != wire.ReasonProtocolError || ev.Text == "" {
		t.Fatalf("down event %+v; want a protocol error with its text", ev)
	}

	strict := connectNamed(t, path, "strict")
	nextConnEvent(t, w, wire.SysConnUp, strict)
	strict.send(wire.AppendSub(nil, 1, "flood", "", wire.SubDisconnect))
	strict.sync()
	pub := connectNamed(t, path, "pub")
	nextConnEvent(t, w, wire.SysConnUp, pub)
	if err := <-publishNumbered(pub, "flood", 4000, 1024); err != nil {
		t.Fatal(err)
	}
	if ev := nextConnEvent(t, w, wire.SysConnDown, strict); ev.Reason != wire.ReasonSlowConsumer {
		t.Fatalf("down event %+v; want slow consumer", ev)
	}
	if st := srv.Stats(); st.SlowConsumers != 1 {
		t.Fatalf("stats %+v; want the one slow consumer", st)
	}
}

// A listener appearing on a stream name, and leaving it, is an event.
func TestListenEvents(t *testing.T) {
	_, path := testBroker(t, nil)
	w := subscriber(t, path, "$SYS.listen.>")
	l := connectRaw(t, path)
	l.send(wire.AppendSub(nil, 7, wire.GroupOnlyPrefix+"printer", wire.StreamGroup, 0))
	l.sync()
	l.send(wire.AppendControl(nil, wire.OpUnsub, 7, nil))
	l.sync()
	for _, want := range []string{wire.SysListenUp + "printer", wire.SysListenDown + "printer"} {
		f := w.next()
		var ev wire.ListenEvent
		if err := wire.DecodeBody(f.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if string(f.Topic) != want || ev.Stream != "printer" || ev.ConnID != l.info.ConnID || ev.PID != uint32(os.Getpid()) {
			t.Fatalf("got %q %+v; want %q about conn %d", f.Topic, ev, want, l.info.ConnID)
		}
	}
}

// Under the default rules a user other than the broker's sees its own
// connections' events, and no others: not the listeners, not another
// uid's connections.
func TestOtherUsersSeeOnlyTheirOwnConns(t *testing.T) {
	brokerUID := uint32(os.Getuid()) + 4242 // the test's uid is then another user's
	_, path := testBroker(t, func(c *Config) {
		c.hooks = &hooks{brokerUID: &brokerUID}
		withPolicy(t, "allow uid %me listen printer")(c)
	})
	w := connectRaw(t, path)
	w.sub(1, fmt.Sprintf("$SYS.conn.up.%d.>", brokerUID), "")
	w.expectErr(wire.CodePermissionDenied, "denied by the default rule")
	w.sub(2, "$SYS.listen.>", "")
	w.expectErr(wire.CodePermissionDenied, "denied by the default rule")
	w.sub(3, "$SYS.>", "") // allowed, and filtered topic by topic
	w.sync()
	c := connectRaw(t, path)
	nextConnEvent(t, w, wire.SysConnUp, c)
	c.send(wire.AppendSub(nil, 1, wire.GroupOnlyPrefix+"printer", wire.StreamGroup, 0))
	c.sync()
	c.sock.Close()
	// The next frame is the down event: the listener's events were not
	// delivered in between.
	if ev := nextConnEvent(t, w, wire.SysConnDown, c); ev.Reason != wire.ReasonNormal {
		t.Fatalf("down event %+v", ev)
	}
}

// A watcher that never reads loses events, with gap notices, and stalls
// nobody: connections keep coming and going, seen by another watcher.
func TestStoppedWatcherStallsNobody(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { smallQueues(c); c.WriteTimeout = time.Minute })
	stopped := subscriber(t, path, "$SYS.>") // never reads again
	w := subscriber(t, path, "$SYS.conn.down.>")
	// Fill the stopped watcher's queue and socket with listener events,
	// which one connection makes quickly; large ones, with a long name.
	l := connectRaw(t, path)
	stream := wire.GroupOnlyPrefix + strings.Repeat("s", 512)
	// More than its socket (2 MiB) and queue hold, until a whole batch of
	// 512 events is almost all dropped: then its socket is full too, not
	// only its queue, which a writer scheduled late (under load) would
	// empty into the socket after the first drop.
	for i := 0; ; i++ {
		var batch []byte
		for range 256 {
			batch = wire.AppendSub(batch, 1, stream, wire.StreamGroup, 0)
			batch = wire.AppendControl(batch, wire.OpUnsub, 1, nil)
		}
		d := srv.Stats().Dropped
		l.send(batch)
		l.sync()
		if i >= 8 && srv.Stats().Dropped-d >= 400 {
			break
		}
	}
	before := srv.Stats().Dropped
	const n = 50
	for range n {
		c := connectRaw(t, path)
		c.sock.Close()
		nextConnEvent(t, w, wire.SysConnDown, c)
	}
	// Most of its up and down events: a few may fit where the writer
	// got bytes into the socket meanwhile.
	if d := srv.Stats().Dropped - before; d < n {
		t.Fatalf("%d events dropped for the stopped watcher; want most of its %d up and down events", d, 2*n)
	}
	_ = stopped
}

// Without a subscription that could match one, an event is not encoded:
// publishing it allocates nothing.
func TestNoEventsWithoutWatchers(t *testing.T) {
	srv, path := testBroker(t, nil)
	c := subscriber(t, path, "app.>")
	w := subscriber(t, path, "$SYS.>")
	if n := srv.watchers.Load(); n != 1 {
		t.Fatalf("%d watchers; want 1", n)
	}
	w.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	w.sync()
	if n := srv.watchers.Load(); n != 0 {
		t.Fatalf("%d watchers after UNSUB; want 0", n)
	}
	conn := srv.connByID(c.info.ConnID)
	allocs := testing.AllocsPerRun(100, func() {
		conn.connEvent(wire.SysConnUp, "", "")
		conn.connEvent(wire.SysConnDown, wire.ReasonNormal, "")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per event with nobody watching; want 0", allocs)
	}
}

// The first time a budget refuses a connection something is an event;
// the next times are not.
func TestBudgetEvent(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Subs = 2 }) // the watcher's and one more
	w := subscriber(t, path, "$SYS.conn.>")
	c := connectRaw(t, path)
	nextConnEvent(t, w, wire.SysConnUp, c)
	c.sub(1, "x", "")
	c.sync()
	for sid := range uint32(2) {
		c.sub(2+sid, "y", "")
		c.expectErr(wire.CodeTooManySubs, "subscriptions budget is 2")
	}
	if ev := nextConnEvent(t, w, wire.SysConnBudget, c); ev.Reason != wire.ReasonBudget || !strings.Contains(ev.Text, "subscriptions budget is 2") {
		t.Fatalf("budget event %+v", ev)
	}
	c.sock.Close()
	nextConnEvent(t, w, wire.SysConnDown, c) // and no second budget event before it
}

// A monitor of "$SYS.>" sees the broker's events as a subscriber does; a
// monitor of ">" asked for the clients' traffic and sees none.
func TestMonitorsSeeEvents(t *testing.T) {
	_, path := testBroker(t, nil)
	all := monitor(t, path, ">")
	sys := monitor(t, path, "$SYS.>")
	c := connectNamed(t, path, "watched")
	if ev := nextConnEvent(t, sys, wire.SysConnUp, c); ev.Name != "watched" {
		t.Fatalf("up event %+v", ev)
	}
	c.sock.Close()
	if ev := nextConnEvent(t, sys, wire.SysConnDown, c); ev.Reason != wire.ReasonNormal {
		t.Fatalf("down event %+v; want reason normal", ev)
	}
	all.quiet()
}

// Every event is offered to each subscription whose pattern starts with
// "$SYS.", whoever's it is, and the default rules let every uid make them
// ("$SYS.>", filtered, in as many queue groups as it likes): a uid's
// watchers are a budget of their own, so that one user cannot make every
// other user's connecting and closing cost the broker its whole
// subscription budget's worth of work.
func TestWatchersAreBudgeted(t *testing.T) {
	if w := DefaultConfig().User.Watchers; w < 1 || w > 1024 {
		t.Fatalf("default User.Watchers %d; want a few hundred", w)
	}
	_, path := testBroker(t, func(c *Config) { c.User.Watchers = 3 })
	c := expectSubBudget(t, path, "$SYS. subscriptions budget is 3", func(c *rawClient, sid uint32) {
		c.sub(sid, "$SYS.listen.>", fmt.Sprintf("g%d", sid))
	})
	c.send(wire.AppendSub(nil, 10, "$SYS.listen.up.>", "", wire.SubMonitor)) // a monitor is one too
	c.expectErr(wire.CodeTooManySubs, "$SYS. subscriptions budget is 3")
	c.sub(11, "app.>", "") // other subscriptions are not watchers
	c.sync()
}

// expectSubBudget checks a budget of 3 of a kind of subscriptions, which
// sub makes (sid unique): a fourth is refused with ERR too many
// subscriptions saying want; an UNSUB gives one back; the budget is the
// uid's, not the connection's. It returns the connection, with 3 held.
func expectSubBudget(t *testing.T, path, want string, sub func(c *rawClient, sid uint32)) *rawClient {
	t.Helper()
	c := connectRaw(t, path)
	for sid := range uint32(3) {
		sub(c, sid+1)
	}
	c.sync()
	sub(c, 4)
	c.expectErr(wire.CodeTooManySubs, want)
	c.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	sub(c, 5)
	c.sync()
	other := connectRaw(t, path)
	sub(other, 1)
	other.expectErr(wire.CodeTooManySubs, want)
	return c
}

// A monitor of a stream's topic watches its dials and is no listener: its
// SUB and UNSUB are no listen events, which would tell a dialer waiting
// for a listener that one came.
func TestMonitorOfStreamIsNoListenEvent(t *testing.T) {
	_, path := testBroker(t, nil)
	w := subscriber(t, path, "$SYS.listen.>")
	mon := monitor(t, path, wire.GroupOnlyPrefix+"printer")
	mon.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	mon.sync()
	l := connectRaw(t, path)
	l.send(wire.AppendSub(nil, 7, wire.GroupOnlyPrefix+"printer", wire.StreamGroup, 0))
	l.sync()
	f := w.next()
	var ev wire.ListenEvent
	if err := wire.DecodeBody(f.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if string(f.Topic) != wire.SysListenUp+"printer" || ev.ConnID != l.info.ConnID {
		t.Fatalf("first event %q about conn %d; want the listener's (%d) arrival, the monitor (%d) being none", f.Topic, ev.ConnID, l.info.ConnID, mon.info.ConnID)
	}
}

// Queue group subscriptions are a budget of the uid's: each group on a
// pattern is another copy of every matching message, which duplicate
// subscriptions in different groups would otherwise multiply without end.
func TestGroupsAreBudgeted(t *testing.T) {
	if g := DefaultConfig().User.Groups; g < 64 || g > 65536 {
		t.Fatalf("default User.Groups %d; want some hundreds", g)
	}
	_, path := testBroker(t, func(c *Config) { c.User.Groups = 3 })
	c := expectSubBudget(t, path, "queue group subscriptions budget is 3", func(c *rawClient, sid uint32) {
		c.sub(sid, "victim.t", fmt.Sprintf("g%d", sid))
	})
	c.sub(10, "victim.t", "") // a plain subscription is no group
	c.sync()
}
