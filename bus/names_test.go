package bus

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// nameClient connects a raw client subscribed to its inbox (id 100), for
// the answers to its name requests.
func nameClient(t testing.TB, path, hello string) *rawClient {
	t.Helper()
	c := connectNamed(t, path, hello)
	c.sub(100, c.inbox(">"), "")
	c.sync()
	return c
}

// nameAsk sends a name request (topic one of the name requests) and
// returns the answer's status, reason and payload.
func (c *rawClient) nameAsk(topic, name string, flags uint8) (status, reason string, payload []byte) {
	c.t.Helper()
	body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: name, Flags: flags})
	c.send(wire.AppendPub(nil, topic, c.inbox("n"), nil, body, 0))
	f, status, reason := c.nextAnswer(c.inbox("n"))
	return status, reason, f.Payload
}

// requestName asks for name and checks the result.
func (c *rawClient) requestName(name string, flags uint8, want string) wire.NameReply {
	c.t.Helper()
	return c.nameReply(wire.SysReqNameRequest, name, flags, want)
}

func (c *rawClient) releaseName(name, want string) wire.NameReply {
	c.t.Helper()
	return c.nameReply(wire.SysReqNameRelease, name, 0, want)
}

func (c *rawClient) nameReply(topic, name string, flags uint8, want string) wire.NameReply {
	c.t.Helper()
	status, reason, payload := c.nameAsk(topic, name, flags)
	if status != "" {
		c.t.Fatalf("%s %q: status %s: %s", topic, name, status, reason)
	}
	var r wire.NameReply
	if err := wire.DecodeBody(payload, &r); err != nil {
		c.t.Fatal(err)
	}
	if r.Result != want {
		c.t.Fatalf("%s %q flags %#x: %q; want %q", topic, name, flags, r.Result, want)
	}
	return r
}

func (c *rawClient) nameOwner(name string) wire.NameOwner {
	c.t.Helper()
	status, reason, payload := c.nameAsk(wire.SysReqNameOwner, name, 0)
	if status != "" {
		c.t.Fatalf("owner of %q: status %s: %s", name, status, reason)
	}
	var o wire.NameOwner
	if err := wire.DecodeBody(payload, &o); err != nil {
		c.t.Fatal(err)
	}
	return o
}

// nextNameEvent reads w's next frame, which must be the owner event of
// name.
func nextNameEvent(t testing.TB, w *rawClient, name string) wire.NameEvent {
	t.Helper()
	f := w.next()
	if f.Op != wire.OpMsg || string(f.Topic) != wire.SysNameOwner+name || f.Origin.Conn != 0 {
		t.Fatalf("got %v %q from conn %d; want the owner event of %q", f.Op, f.Topic, f.Origin.Conn, name)
	}
	var ev wire.NameEvent
	if err := wire.DecodeBody(f.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func connOf(id *wire.NameIdentity) uint64 {
	if id == nil {
		return 0
	}
	return id.ConnID
}

// D-Bus's answers: the first owns the name, the same again is already its
// owner, a second queues, a third that will not queue is told it exists;
// release answers released, not_owner and non_existent as they apply.
func TestNameRequestAnswers(t *testing.T) {
	_, path := testBroker(t, nil)
	a, b, c := nameClient(t, path, "a"), nameClient(t, path, "b"), nameClient(t, path, "c")
	r := a.requestName("org.example.Editor", 0, wire.NamePrimaryOwner)
	if connOf(r.Owner) != a.info.ConnID || r.Owner.Name != "a" || r.Owner.PID != uint32(os.Getpid()) || r.Seq == 0 {
		t.Fatalf("reply %+v owner %+v", r, r.Owner)
	}
	a.requestName("org.example.Editor", 0, wire.NameAlreadyOwner)
	if r := b.requestName("org.example.Editor", 0, wire.NameInQueue); connOf(r.Owner) != a.info.ConnID {
		t.Fatalf("queued: owner %+v", r.Owner)
	}
	c.requestName("org.example.Editor", wire.NameDoNotQueue, wire.NameExists)
	o := c.nameOwner("org.example.Editor")
	if connOf(o.Owner) != a.info.ConnID || len(o.Queue) != 1 || o.Queue[0].ConnID != b.info.ConnID || o.Seq < r.Seq {
		t.Fatalf("owner answer %+v", o)
	}
	c.releaseName("org.example.Editor", wire.NameNotOwner)
	c.releaseName("org.example.Nobody", wire.NameNonExistent)
	b.releaseName("org.example.Editor", wire.NameReleased) // leaves the queue
	a.releaseName("org.example.Editor", wire.NameReleased)
	if o := c.nameOwner("org.example.Editor"); o.Owner != nil || len(o.Queue) != 0 {
		t.Fatalf("after release: %+v", o)
	}
	// Queued with do-not-queue later: leaves the queue.
	a.requestName("n", 0, wire.NamePrimaryOwner)
	b.requestName("n", 0, wire.NameInQueue)
	b.requestName("n", wire.NameDoNotQueue, wire.NameExists)
	if o := c.nameOwner("n"); len(o.Queue) != 0 {
		t.Fatalf("queue after do-not-queue: %+v", o.Queue)
	}
}

// The owner's loss hands the name to the head of the queue at once; the
// event names both, and the new owner's subscription, made in advance,
// takes the name's requests.
func TestNameHandoverOnClose(t *testing.T) {
	_, path := testBroker(t, nil)
	w := subscriber(t, path, "$SYS.name.>")
	a, b := nameClient(t, path, "a"), nameClient(t, path, "b")
	b.sub(1, wire.NamePrefix+"svc.>", "") // dormant until b owns svc
	b.sync()
	a.requestName("svc", 0, wire.NamePrimaryOwner)
	if ev := nextNameEvent(t, w, "svc"); ev.Old != nil || connOf(ev.New) != a.info.ConnID {
		t.Fatalf("first event %+v", ev)
	}
	b.requestName("svc", 0, wire.NameInQueue)
	p := nameClient(t, path, "p")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc.ping", p.inbox("r"), nil, []byte("1"), 0))
	p.expectStatus(p.inbox("r"), wire.StatusNoResponders, "") // a has no subscription
	b.quiet()                                                 // and b's is dormant
	a.sock.Close()
	ev := nextNameEvent(t, w, "svc")
	if connOf(ev.Old) != a.info.ConnID || connOf(ev.New) != b.info.ConnID || ev.New.Name != "b" {
		t.Fatalf("handover event %+v", ev)
	}
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc.ping", p.inbox("r"), nil, []byte("2"), 0))
	if f := b.next(); f.Op != wire.OpMsg || f.ID != 1 || string(f.Payload) != "2" || f.Origin.Conn != p.info.ConnID {
		t.Fatalf("b got %v %q %q", f.Op, f.Topic, f.Payload)
	}
	// The new owner may answer the request: it holds the permit.
	b.send(wire.AppendPub(nil, p.inbox("r"), "", nil, []byte("pong"), 0))
	if f := p.next(); string(f.Payload) != "pong" || f.Origin.Conn != b.info.ConnID {
		t.Fatalf("p got %v %q", f.Op, f.Payload)
	}
}

// Replacement: an owner that allows it is replaced by a request that asks
// to, and goes to the head of the queue; one that asked not to queue
// loses the name.
func TestNameReplacement(t *testing.T) {
	_, path := testBroker(t, nil)
	w := subscriber(t, path, "$SYS.name.>")
	a, b, c := nameClient(t, path, "a"), nameClient(t, path, "b"), nameClient(t, path, "c")
	a.requestName("x", 0, wire.NamePrimaryOwner)
	nextNameEvent(t, w, "x")
	b.requestName("x", wire.NameReplaceExisting, wire.NameInQueue) // a does not allow it
	a.requestName("x", wire.NameAllowReplacement, wire.NameAlreadyOwner)
	b.requestName("x", wire.NameReplaceExisting|wire.NameAllowReplacement|wire.NameDoNotQueue, wire.NamePrimaryOwner)
	ev := nextNameEvent(t, w, "x")
	if connOf(ev.Old) != a.info.ConnID || connOf(ev.New) != b.info.ConnID {
		t.Fatalf("replacement event %+v", ev)
	}
	if o := c.nameOwner("x"); len(o.Queue) != 1 || o.Queue[0].ConnID != a.info.ConnID {
		t.Fatalf("queue %+v", o.Queue)
	}
	c.requestName("x", wire.NameReplaceExisting, wire.NamePrimaryOwner) // b asked not to queue
	nextNameEvent(t, w, "x")
	if o := c.nameOwner("x"); connOf(o.Owner) != c.info.ConnID || len(o.Queue) != 1 || o.Queue[0].ConnID != a.info.ConnID {
		t.Fatalf("after the second replacement %+v", o)
	}
	c.releaseName("x", wire.NameReleased)
	if ev := nextNameEvent(t, w, "x"); connOf(ev.New) != a.info.ConnID {
		t.Fatalf("after release %+v", ev)
	}
}

// A name's topics reach only its owner's subscriptions, by the longest
// owned name; another connection's wildcards and dormant subscriptions get
// nothing, monitors the policy allows do.
func TestNameRoutingReachesOnlyTheOwner(t *testing.T) {
	// Monitor on exactly one name topic: a subscription with monitor
	// over its pattern would see every name's traffic, as inboxes'.
	_, path := testBroker(t, withPolicy(t, "allow uid %me monitor _NAME.x.m"))
	a, b := nameClient(t, path, "a"), nameClient(t, path, "b")
	b.requestName("x.y", 0, wire.NamePrimaryOwner) // before its ">", which would get the answer too
	a.sub(1, wire.NamePrefix+"x.>", "")
	a.sub(2, wire.NamePrefix+"x", "q")
	b.sub(1, ">", "")
	b.sub(2, wire.NamePrefix+">", "")
	b.sub(3, wire.NamePrefix+"x.>", "q")
	b.sub(4, wire.NamePrefix+"x.y.>", "")
	b.sync()
	mon := connectRaw(t, path)
	mon.send(wire.AppendSub(nil, 1, wire.NamePrefix+"x.m", "", wire.SubMonitor))
	mon.sync()
	a.requestName("x", 0, wire.NamePrimaryOwner)
	p := nameClient(t, path, "p")
	p.pub(wire.NamePrefix+"x.m", "1")
	p.pub(wire.NamePrefix+"x", "2")
	p.sync()
	for _, want := range []uint32{1, 2} {
		if f := a.next(); f.Op != wire.OpMsg || f.ID != want {
			t.Fatalf("a got %v id %d; want MSG for %d", f.Op, f.ID, want)
		}
	}
	b.quiet()
	if f := mon.next(); f.Op != wire.OpMsg || string(f.Payload) != "1" {
		t.Fatalf("monitor got %v %q", f.Op, f.Payload)
	}
	// The longest owned name wins: b owns x.y.
	p.pub(wire.NamePrefix+"x.y.z", "3")
	p.pub(wire.NamePrefix+"x.yz", "4")
	p.sync()
	got := map[uint32]bool{}
	for range 4 { // >, _NAME.>, _NAME.x.> in group q, _NAME.x.y.>
		if f := b.next(); f.Op != wire.OpMsg || string(f.Payload) != "3" {
			t.Fatalf("b got %v id %d %q; want MSG 3", f.Op, f.ID, f.Payload)
		} else {
			got[f.ID] = true
		}
	}
	if len(got) != 4 {
		t.Fatalf("b's subscriptions that got it: %v", got)
	}
	if f := a.next(); f.ID != 1 || string(f.Payload) != "4" {
		t.Fatalf("a got id %d %q", f.ID, f.Payload)
	}
	b.quiet()
	// Nobody owns z: a request is answered at once.
	p.send(wire.AppendPub(nil, wire.NamePrefix+"z", p.inbox("r"), nil, nil, 0))
	p.expectStatus(p.inbox("r"), wire.StatusNoResponders, "")
}

// Hostile requests get clear answers: bad names, names the policy keeps,
// more names than a connection, a uid or a queue may hold.
func TestNameRefusals(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxNames, c.MaxNameQueue, c.User.Names = 64, 2, 100
		withPolicy(t, "deny uid %me own org.secret.>\nallow uid %me all >")(c)
	})
	a := nameClient(t, path, "a")
	for _, bad := range []string{"", "$x", "_x", "a.*", "a.>", "a..b", strings.Repeat("a", 256), strings.Repeat("a.", 32) + "a"} {
		if status, _, _ := a.nameAsk(wire.SysReqNameRequest, bad, 0); status != wire.StatusBadRequest {
			t.Errorf("name %q: status %q; want 400", bad, status)
		}
	}
	if status, _, _ := a.nameAsk(wire.SysReqNameRequest, "x", 0x8); status != wire.StatusBadRequest {
		t.Errorf("unknown flag: status %q", status)
	}
	status, reason, _ := a.nameAsk(wire.SysReqNameRequest, "org.secret.key", 0)
	if status != wire.StatusForbidden || !strings.Contains(reason, "rule at line 1") {
		t.Fatalf("secret name: %s %q", status, reason)
	}
	a.sub(1, wire.NamePrefix+"org.secret.key.>", "")
	a.expectErr(wire.CodePermissionDenied, "rule at line 1")
	// A flood of names: the 65th is refused, and so on.
	for i := range 64 {
		a.requestName(fmt.Sprint("n", i), 0, wire.NamePrimaryOwner)
	}
	for i := range 2000 { // thousands of names: each refused, nothing held
		name := fmt.Sprint("n", 64+i)
		if status, reason, _ := a.nameAsk(wire.SysReqNameRequest, name, 0); status != wire.StatusNoRoom || !strings.Contains(reason, "64 names, the limit") {
			t.Fatalf("%s: %s %q", name, status, reason)
		}
	}
	srv.names.mu.Lock()
	if n := len(srv.names.names); n != 64 {
		t.Errorf("%d names held after the refusals; want 64", n)
	}
	srv.names.mu.Unlock()
	// The uid's bound: 100 in all.
	b := nameClient(t, path, "b")
	for i := range 36 {
		b.requestName(fmt.Sprint("m", i), 0, wire.NamePrimaryOwner)
	}
	if status, reason, _ := b.nameAsk(wire.SysReqNameRequest, "m36", 0); status != wire.StatusNoRoom || !strings.Contains(reason, "100 names, the limit") {
		t.Fatalf("uid bound: %s %q", status, reason)
	}
	// The queue's: 2.
	for _, m := range []string{"m0", "m1", "m2"} {
		b.releaseName(m, wire.NameReleased)
	}
	b.requestName("n0", 0, wire.NameInQueue)
	c := nameClient(t, path, "c")
	c.requestName("n0", 0, wire.NameInQueue)
	d := nameClient(t, path, "d")
	if status, reason, _ := d.nameAsk(wire.SysReqNameRequest, "n0", 0); status != wire.StatusNoRoom || !strings.Contains(reason, "2 connections queue") {
		t.Fatalf("queue bound: %s %q", status, reason)
	}
	// Releasing what it does not hold changes nothing.
	d.releaseName("n1", wire.NameNotOwner)
	if o := d.nameOwner("n1"); connOf(o.Owner) != a.info.ConnID {
		t.Fatalf("n1 %+v", o)
	}
	// Everything is given back when they close.
	w := subscriber(t, path, "$SYS.conn.down.>")
	for _, x := range []*rawClient{a, b, c} {
		x.sock.Close()
		nextConnEvent(t, w, wire.SysConnDown, x)
	}
	srv.names.mu.Lock()
	n, uids, conns := len(srv.names.names), len(srv.names.byUID), len(srv.names.byConn)
	srv.names.mu.Unlock()
	if n != 0 || uids != 0 || conns != 0 {
		t.Fatalf("after closing: %d names, %d uids, %d conns left", n, uids, conns)
	}
}

// A connection that closes right after its request, before reading the
// answer, leaves nothing behind, and its queue place goes.
func TestNameRequestThenClose(t *testing.T) {
	srv, path := testBroker(t, nil)
	w := subscriber(t, path, "$SYS.conn.down.>")
	a := nameClient(t, path, "a")
	a.requestName("x", 0, wire.NamePrimaryOwner)
	for range 20 {
		c := connectRaw(t, path)
		body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: "x"})
		c.send(wire.AppendPub(nil, wire.SysReqNameRequest, c.inbox("n"), nil, body, 0))
		body, _ = wire.AppendBody(nil, &wire.NameRequest{Name: "y"})
		c.send(wire.AppendPub(nil, wire.SysReqNameRequest, c.inbox("n"), nil, body, 0))
		c.sock.Close()
		nextConnEvent(t, w, wire.SysConnDown, c)
	}
	if o := a.nameOwner("x"); len(o.Queue) != 0 {
		t.Fatalf("queue %+v", o.Queue)
	}
	srv.names.mu.Lock()
	defer srv.names.mu.Unlock()
	if len(srv.names.names) != 1 || len(srv.names.byConn) != 1 {
		t.Fatalf("%d names, %d conns", len(srv.names.names), len(srv.names.byConn))
	}
}

// $SYS.req.names lists every name with its owner and queue, bounded.
func TestNamesList(t *testing.T) {
	_, path := testBroker(t, nil)
	a, b := nameClient(t, path, "a"), nameClient(t, path, "b")
	a.requestName("b.name", 0, wire.NamePrimaryOwner)
	a.requestName("a.name", 0, wire.NamePrimaryOwner)
	b.requestName("a.name", 0, wire.NameInQueue)
	body, _ := wire.AppendBody(nil, &wire.ListRequest{Limit: 1})
	b.send(wire.AppendPub(nil, wire.SysReqNames, b.inbox("l"), nil, body, 0))
	f, status, _ := b.nextAnswer(b.inbox("l"))
	var l wire.NameList
	if err := wire.DecodeBody(f.Payload, &l); status != "" || err != nil {
		t.Fatal(status, err)
	}
	if l.Total != 2 || !l.Truncated || len(l.Names) != 1 || l.Names[0].Name != "a.name" ||
		connOf(l.Names[0].Owner) != a.info.ConnID || len(l.Names[0].Queue) != 1 || l.Names[0].Queue[0].ConnID != b.info.ConnID {
		t.Fatalf("list %+v", l)
	}
}

// Name events go only where the policy lets them: a user the policy hides
// a name's events from does not get them.
func TestNameEventsArePolicy(t *testing.T) {
	brokerUID := uint32(os.Getuid()) + 4242 // the test's uid is then another user's
	_, path := testBroker(t, func(c *Config) {
		c.hooks = &hooks{brokerUID: &brokerUID}
		withPolicy(t, "deny uid %me subscribe $SYS.name.owner.secret.>\nallow uid %me publish _INBOX.>\nallow uid %me subscribe _INBOX.>")(c)
	})
	w := connectRaw(t, path)
	w.sub(1, "$SYS.name.>", "") // allowed, and filtered topic by topic
	w.sub(2, "$SYS.name.owner.secret.x", "")
	w.expectErr(wire.CodePermissionDenied, "rule at line 1")
	w.sync()
	a := nameClient(t, path, "a")
	a.requestName("secret.x", 0, wire.NamePrimaryOwner) // by default, any uid may own names
	a.requestName("public", 0, wire.NamePrimaryOwner)
	if ev := nextNameEvent(t, w, "public"); connOf(ev.New) != a.info.ConnID {
		t.Fatalf("event %+v", ev)
	}
}

// A client queueing on every name holds at most its bound of places, and
// its places go when it closes.
func TestNameQueueingEverywhereIsBounded(t *testing.T) {
	srv, path := testBroker(t, nil)
	owners := []*rawClient{nameClient(t, path, "o1"), nameClient(t, path, "o2")}
	for i := range 100 {
		owners[i/50].requestName(fmt.Sprint("q", i), 0, wire.NamePrimaryOwner)
	}
	h := nameClient(t, path, "hostile")
	for i := range 100 {
		status, reason, _ := h.nameAsk(wire.SysReqNameRequest, fmt.Sprint("q", i), 0)
		switch {
		case i < 64 && status != "":
			t.Fatalf("q%d: %s %q", i, status, reason)
		case i >= 64 && (status != wire.StatusNoRoom || !strings.Contains(reason, "64 names, the limit")):
			t.Fatalf("q%d: %s %q; want 429", i, status, reason)
		}
	}
	w := subscriber(t, path, "$SYS.conn.down.>")
	h.sock.Close()
	nextConnEvent(t, w, wire.SysConnDown, h)
	srv.names.mu.Lock()
	defer srv.names.mu.Unlock()
	for name, e := range srv.names.names {
		if len(e.queue) != 0 {
			t.Fatalf("%s still has a queue of %d", name, len(e.queue))
		}
	}
}
