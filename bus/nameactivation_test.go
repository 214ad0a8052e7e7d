package bus

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// fakeActivator has services for the names it was given, and tells the
// test what it is asked.
type fakeActivator struct {
	services map[string]bool
	started  chan string // Activate returned true for it
	owned    chan string

	mu     sync.Mutex
	failed map[string]func(error)
	// failAtOnce: Activate calls failed before it returns true.
	failAtOnce map[string]error
}

func newFakeActivator(names ...string) *fakeActivator {
	a := &fakeActivator{services: map[string]bool{}, started: make(chan string, 100), owned: make(chan string, 100), failed: map[string]func(error){}}
	for _, n := range names {
		a.services[n] = true
	}
	return a
}

func (a *fakeActivator) Activate(name string, failed func(error)) bool {
	if !a.services[name] {
		return false
	}
	a.mu.Lock()
	a.failed[name] = failed
	err := a.failAtOnce[name]
	a.mu.Unlock()
	if err != nil {
		failed(err) // allowed: from any goroutine, at any time
	}
	a.started <- name
	return true
}

func (a *fakeActivator) Owned(name string) { a.owned <- name }

func (a *fakeActivator) fail(name string, err error) {
	a.mu.Lock()
	f := a.failed[name]
	a.mu.Unlock()
	f(err)
}

func waitName(t *testing.T, ch chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("got %q; want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no %q in 5s", want)
	}
}

// A request to a name nobody owns starts its service and is held; when the
// service takes the name, the held requests reach it in order, and its
// answer reaches the requester.
func TestActivationHoldsRequestsUntilOwned(t *testing.T) {
	act := newFakeActivator("svc")
	_, path := testBroker(t, func(c *Config) { c.Activator = act })
	p := nameClient(t, path, "p")
	for i := range 3 {
		p.send(wire.AppendPub(nil, wire.NamePrefix+"svc.call", p.inbox(fmt.Sprint("r", i)), nil, []byte(fmt.Sprint(i)), 0))
	}
	waitName(t, act.started, "svc")
	p.quiet() // held: no answer yet
	svc := nameClient(t, path, "svc")
	svc.sub(1, wire.NamePrefix+"svc.>", "")
	svc.sync()
	// The held requests come before the answer to the name request: they
	// are delivered in the step that makes svc the owner.
	body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: "svc"})
	svc.send(wire.AppendPub(nil, wire.SysReqNameRequest, svc.inbox("n"), nil, body, 0))
	var held []wire.Frame
	for range 3 {
		held = append(held, svc.next())
	}
	svc.nextAnswer(svc.inbox("n"))
	waitName(t, act.owned, "svc")
	for i, f := range held {
		if f.Op != wire.OpMsg || string(f.Payload) != fmt.Sprint(i) || f.Origin.Conn != p.info.ConnID {
			t.Fatalf("service got %v %q from %d", f.Op, f.Payload, f.Origin.Conn)
		}
		svc.send(wire.AppendPub(nil, string(f.Reply), "", nil, []byte("ok"), 0))
		if g := p.next(); string(g.Topic) != p.inbox(fmt.Sprint("r", i)) || string(g.Payload) != "ok" {
			t.Fatalf("requester got %q %q", g.Topic, g.Payload)
		}
	}
	// No service: no-responders at once, and nothing started.
	p.send(wire.AppendPub(nil, wire.NamePrefix+"other", p.inbox("x"), nil, nil, 0))
	p.expectStatus(p.inbox("x"), wire.StatusNoResponders, "")
}

// A failed activation answers every held request with 503 and the reason;
// so does one that times out.
func TestActivationFailureAndTimeout(t *testing.T) {
	act := newFakeActivator("svc", "slow")
	srv, path := testBroker(t, func(c *Config) { c.Activator = act; c.ActivationTimeout = 100 * time.Millisecond })
	p := nameClient(t, path, "p")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("a"), nil, nil, 0))
	waitName(t, act.started, "svc")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc.m", p.inbox("b"), nil, nil, 0))
	p.sync()
	act.fail("svc", errors.New("exit status 3"))
	p.expectStatus(p.inbox("a"), wire.StatusNoResponders, "activation of svc failed: exit status 3")
	p.expectStatus(p.inbox("b"), wire.StatusNoResponders, "activation of svc failed: exit status 3")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"slow", p.inbox("c"), nil, nil, 0))
	waitName(t, act.started, "slow")
	p.expectStatus(p.inbox("c"), wire.StatusNoResponders, "activation of slow failed: no owner in time")
	srv.names.mu.Lock()
	defer srv.names.mu.Unlock()
	if srv.names.held != 0 || len(srv.names.names) != 0 {
		t.Fatalf("held %d, names %d", srv.names.held, len(srv.names.names))
	}
}

// Held requests are bounded per name (two uids fill it: each holds at
// most half), and dropped when their requester closes.
func TestActivationBounds(t *testing.T) {
	act := newFakeActivator("svc")
	srv, path := testBroker(t, func(c *Config) {
		c.Activator = act
		c.ActivationTimeout = time.Minute
		withPolicy(t, "allow uid 4321 publish,subscribe >")(c)
	})
	p := nameClient(t, path, "p")
	for i := range maxHeldPerUserName {
		p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox(fmt.Sprint(i)), nil, []byte("x"), 0))
	}
	p.sync()
	q := dialAs(t, path, 4321)
	q.sub(1, q.inbox(">"), "")
	for i := range maxHeldPerName - maxHeldPerUserName {
		q.send(wire.AppendPub(nil, wire.NamePrefix+"svc", q.inbox(fmt.Sprint(i)), nil, []byte("x"), 0))
	}
	q.send(wire.AppendPub(nil, wire.NamePrefix+"svc", q.inbox("over"), nil, nil, 0))
	q.expectStatus(q.inbox("over"), wire.StatusNoResponders, "32 requests already wait")
	// Both requesters close; their down events, in whichever order the
	// broker handles the two closes, come after their held requests go.
	w := subscriber(t, path, "$SYS.conn.down.>")
	q.sock.Close()
	p.sock.Close()
	down := map[uint64]bool{}
	for len(down) < 2 {
		f := w.next()
		var ev wire.ConnEvent
		if err := wire.DecodeBody(f.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		down[ev.ConnID] = true
	}
	if !down[p.info.ConnID] || !down[q.info.ConnID] {
		t.Fatalf("down events of %v; want conns %d and %d", down, p.info.ConnID, q.info.ConnID)
	}
	srv.names.mu.Lock()
	held, by := srv.names.held, len(srv.names.heldBy)
	srv.names.mu.Unlock()
	if held != 0 || by != 0 {
		t.Fatalf("after close: %d held, %d requesters", held, by)
	}
}

// A held request keeps its descriptor: the service gets it, open, once it
// takes the name.
func TestActivationKeepsDescriptors(t *testing.T) {
	act := newFakeActivator("svc")
	_, path := testBroker(t, func(c *Config) { c.Activator = act })
	p := nameClient(t, path, "p")
	f := memfdWith(t, "held")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("r"), nil, nil, 1), int(f.Fd()))
	waitName(t, act.started, "svc")
	p.sync()  // the request is handled, so held, before the service takes the name
	f.Close() // the broker's copy is what is held
	svc := nameClient(t, path, "svc")
	svc.sub(1, wire.NamePrefix+"svc", "")
	svc.sync()
	body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: "svc"})
	svc.send(wire.AppendPub(nil, wire.SysReqNameRequest, svc.inbox("n"), nil, body, 0))
	g := svc.next()
	if g.Op != wire.OpMsg || g.ID != 1 || g.NFDs != 1 || g.Origin.Conn != p.info.ConnID {
		t.Fatalf("service got %v id %d with %d fds", g.Op, g.ID, g.NFDs)
	}
	fds, err := svc.sock.TakeFDs(1)
	if err != nil {
		t.Fatal(err)
	}
	got := os.NewFile(uintptr(fds[0]), "held")
	defer got.Close()
	b := make([]byte, 8)
	if n, _ := got.ReadAt(b, 0); string(b[:n]) != "held" {
		t.Fatalf("the descriptor reads %q", b[:n])
	}
	svc.nextAnswer(svc.inbox("n"))
}

// An Activator may call failed before Activate returns: the request is
// answered, not held for ever.
func TestActivationFailingAtOnce(t *testing.T) {
	act := newFakeActivator("svc")
	act.failAtOnce = map[string]error{"svc": errors.New("no such file")}
	srv, path := testBroker(t, func(c *Config) { c.Activator = act; c.ActivationTimeout = time.Minute })
	p := nameClient(t, path, "p")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("a"), nil, nil, 0))
	p.expectStatus(p.inbox("a"), wire.StatusNoResponders, "activation of svc failed")
	srv.names.mu.Lock()
	defer srv.names.mu.Unlock()
	if srv.names.held != 0 || len(srv.names.names) != 0 {
		t.Fatalf("held %d, names %d", srv.names.held, len(srv.names.names))
	}
}

// A held request is shown to the monitors that may see it when it is
// delivered, as any message to a name is: once, without its descriptor.
func TestHeldRequestShownToMonitors(t *testing.T) {
	act := newFakeActivator("svc")
	_, path := testBroker(t, func(c *Config) {
		c.Activator = act
		withPolicy(t, "allow uid %me monitor _NAME.>")(c)
	})
	mon := connectRaw(t, path)
	mon.send(wire.AppendSub(nil, 1, wire.NamePrefix+">", "", wire.SubMonitor))
	mon.sync()
	p := nameClient(t, path, "p")
	f := memfdWith(t, "held")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc", p.inbox("r"), nil, []byte("call"), 1), int(f.Fd()))
	waitName(t, act.started, "svc")
	p.sync() // held
	f.Close()
	mon.quiet() // nothing shown while it is held

	svc := nameClient(t, path, "svc")
	svc.sub(1, wire.NamePrefix+"svc", "")
	svc.sync()
	body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: "svc"})
	svc.send(wire.AppendPub(nil, wire.SysReqNameRequest, svc.inbox("n"), nil, body, 0))
	if h := svc.next(); h.Op != wire.OpMsg || string(h.Payload) != "call" || h.NFDs != 1 {
		t.Fatalf("service got %v %q with %d fds; want the held request and its descriptor", h.Op, h.Payload, h.NFDs)
	}
	fds, err := svc.sock.TakeFDs(1)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[0])
	svc.nextAnswer(svc.inbox("n"))
	g := mon.expectMsg(wire.NamePrefix+"svc", "call")
	if g.NFDs != 0 || lastFDs(g.Headers) != "1" || string(g.Reply) != p.inbox("r") || g.Origin.Conn != p.info.ConnID {
		t.Fatalf("monitor got %d fds, Bus-FDs %q, reply %q from %d; want the request without its descriptor", g.NFDs, lastFDs(g.Headers), g.Reply, g.Origin.Conn)
	}
	mon.quiet()
}

// A held request is decided again when it is delivered: one that a policy
// loaded while it was held no longer lets its requester publish reaches
// nobody, and its requester is told why; one still allowed is delivered.
func TestHeldRequestDecidedAgainUnderANewPolicy(t *testing.T) {
	act := newFakeActivator("svc")
	srv, path := testBroker(t, func(c *Config) { c.Activator = act })
	p := nameClient(t, path, "p")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc.secret", p.inbox("denied"), nil, []byte("no"), 0))
	waitName(t, act.started, "svc")
	p.send(wire.AppendPub(nil, wire.NamePrefix+"svc.open", p.inbox("allowed"), nil, []byte("yes"), 0))
	p.sync() // both held
	srv.SetPolicy(mustPolicy(t, "deny uid %me publish _NAME.svc.secret\nallow uid %me all >"))

	svc := nameClient(t, path, "svc")
	svc.sub(1, wire.NamePrefix+"svc.>", "")
	svc.sync()
	body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: "svc"})
	svc.send(wire.AppendPub(nil, wire.SysReqNameRequest, svc.inbox("n"), nil, body, 0))
	if f := svc.next(); f.Op != wire.OpMsg || string(f.Payload) != "yes" {
		t.Fatalf("service got %v %q; want only the request still allowed", f.Op, f.Payload)
	}
	svc.nextAnswer(svc.inbox("n"))
	svc.quiet()
	p.expectStatus(p.inbox("denied"), wire.StatusNoResponders, `publish to "_NAME.svc.secret" denied by rule at line 1`)
	srv.names.mu.Lock()
	defer srv.names.mu.Unlock()
	if srv.names.held != 0 {
		t.Fatalf("%d requests still held", srv.names.held)
	}
}
