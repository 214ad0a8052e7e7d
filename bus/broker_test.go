package bus

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

func TestPubSubWithWildcards(t *testing.T) {
	srv, path := testBroker(t, nil)
	sub := connectRaw(t, path)
	sub.sub(1, "app.*.opened", "")
	sub.sub(2, "app.>", "")
	sub.sub(3, "other", "")
	sub.sync()
	pub := connectRaw(t, path)
	pub.pub("app.editor.opened", "hi")
	got := map[uint32]string{}
	for range 2 {
		f := sub.next()
		if f.Op != wire.OpMsg || string(f.Topic) != "app.editor.opened" {
			t.Fatalf("got %v %q", f.Op, f.Topic)
		}
		got[f.ID] = string(f.Payload)
		if f.Origin.Conn != pub.info.ConnID || f.Origin.PID != uint32(os.Getpid()) || f.Origin.UID != uint32(os.Getuid()) {
			t.Errorf("origin %+v; want conn %d pid %d", f.Origin, pub.info.ConnID, os.Getpid())
		}
	}
	if got[1] != "hi" || got[2] != "hi" {
		t.Fatalf("deliveries %v; want subscriptions 1 and 2", got)
	}
	sub.sync() // nothing else was queued before the PONG
	if st := srv.Stats(); st.Published != 1 || st.Delivered != 2 || st.Subs != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestInfoAnnouncesLimits(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.Limits.MaxFDs = 7; c.MaxSubs = 5 })
	c := connectRaw(t, path)
	if c.info.MaxFDs != 7 || c.info.MaxSubs != 5 || c.info.ConnID == 0 || c.info.Version != wire.Version {
		t.Fatalf("INFO %+v", c.info)
	}
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.sub(5, "x", "")
	c.send(wire.AppendControl(nil, wire.OpUnsub, 5, nil))
	c.pub("x", "lost")
	c.sync()
	c.send(wire.AppendControl(nil, wire.OpUnsub, 5, nil))
	c.expectErr(wire.CodeUnknownSub, "id 5")
}

func TestOrderPerPublisher(t *testing.T) {
	_, path := testBroker(t, nil)
	const pubs, subs, n = 4, 3, 2000
	var subscribers []*rawClient
	for range subs {
		s := connectRaw(t, path)
		s.sub(1, "seq.>", "")
		s.sync()
		subscribers = append(subscribers, s)
	}
	errs := make(chan error, pubs)
	for p := range pubs {
		c := connectRaw(t, path)
		go func() {
			var batch []byte
			for i := range n {
				batch = wire.AppendPub(batch, fmt.Sprintf("seq.%d", p), "", nil, []byte(fmt.Sprint(i)), 0)
				if i%97 == 0 || i == n-1 {
					if _, err := c.sock.Write(batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
			errs <- nil
		}()
	}
	for range pubs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for si, s := range subscribers {
		next := make([]int, pubs)
		for range pubs * n {
			f := s.next()
			var p, i int
			fmt.Sscanf(string(f.Topic), "seq.%d", &p)
			fmt.Sscan(string(f.Payload), &i)
			if i != next[p] {
				t.Fatalf("subscriber %d: publisher %d's message %d arrived when %d was due", si, p, i, next[p])
			}
			next[p]++
		}
	}
}

func TestQueueGroupDeliversToOneMember(t *testing.T) {
	_, path := testBroker(t, nil)
	var members []*rawClient
	for range 3 {
		m := connectRaw(t, path)
		m.sub(1, "job", "workers")
		m.sync()
		members = append(members, m)
	}
	plain := subscriber(t, path, "job")
	pub := connectRaw(t, path)
	const n = 300
	for i := range n {
		pub.pub("job", fmt.Sprint(i))
	}
	pub.sync()
	for range n {
		plain.next()
	}
	var seen []int
	for _, m := range members { // the PONG comes after every MSG queued before it

		m.send(wire.AppendControl(nil, wire.OpPing, 7, nil))
		for {
			f := m.next()
			if f.Op == wire.OpPong {
				break
			}
			var i int
			fmt.Sscan(string(f.Payload), &i)
			seen = append(seen, i)
		}
	}
	slices.Sort(seen)
	for i, v := range seen {
		if v != i {
			t.Fatalf("group got %v...; want each of 0..%d exactly once", seen[:min(i+2, len(seen))], n-1)
		}
	}
	if len(seen) != n {
		t.Fatalf("group got %d messages; want %d", len(seen), n)
	}
}

func TestDeadlinesWatchdog(t *testing.T) {
	// Every blocking helper above carries its own 5 s deadline; this test
	// only checks that a read with nothing to come times out as designed.
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	if _, err := c.tryNext(50 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("got %v; want a timeout", err)
	}
}

// A request nobody serves is answered at once by the broker: an empty MSG
// to the reply topic with the no-responders status, from connection 0.
func TestNoRespondersStatus(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.send(wire.AppendPub(nil, "nobody.home", c.inbox("1"), nil, []byte("hello?"), 0))
	f := c.next()
	if f.Op != wire.OpMsg || string(f.Topic) != c.inbox("1") || len(f.Payload) != 0 || f.Origin.Conn != 0 {
		t.Fatalf("got %v %q %q origin %+v", f.Op, f.Topic, f.Payload, f.Origin)
	}
	if v, ok := f.Headers.Get(wire.StatusHeader); !ok || v != wire.StatusNoResponders {
		t.Fatalf("status header %q, %v", v, ok)
	}
	// A request somebody serves gets no status; a plain PUB to nobody none either.
	c.sub(2, "served", "")
	c.send(wire.AppendPub(nil, "served", c.inbox("2"), nil, nil, 0))
	if f := c.next(); f.ID != 2 {
		t.Fatalf("got a MSG for subscription %d; want the request on 2", f.ID)
	}
	c.pub("nobody.home", "fire and forget")
	c.sync()
}

// The status goes only to the requester itself: a client cannot make the
// broker speak, in its own name, to other connections.
func TestNoRespondersStatusIsPrivate(t *testing.T) {
	_, path := testBroker(t, nil)
	victim := connectRaw(t, path)
	victim.sub(1, victim.inbox(">"), "")
	victim.sub(2, "$SYS.conn.closed", "") // not "$SYS.>": the attacker's connecting is an event it may see
	victim.sync()
	attacker := connectRaw(t, path)
	attacker.send(wire.AppendPub(nil, "nobody.home", victim.inbox("1"), nil, nil, 0))
	attacker.expectErr(wire.CodePermissionDenied, "is in another connection's inbox")
	attacker.send(wire.AppendPub(nil, "nobody.home", "$SYS.conn.closed", nil, nil, 0))
	attacker.expectErr(wire.CodeReservedTopic, "reply topic")
	attacker.sync()
	if f, err := victim.tryNext(100 * time.Millisecond); err == nil {
		t.Fatalf("another connection's request reached the victim: %v %q", f.Op, f.Topic)
	}
}

// A message for several subscriptions is encoded once and copied: each
// copy must carry its own subscription's id, origin and sections.
func TestEachSubscriptionGetsItsOwnID(t *testing.T) {
	_, path := testBroker(t, nil)
	a := connectRaw(t, path)
	a.sub(7, "multi.>", "")
	a.sub(9, "multi.x", "")
	a.sync()
	b := connectRaw(t, path)
	b.sub(3, "*.x", "")
	b.sync()
	pub := connectRaw(t, path)
	pub.send(wire.AppendPub(nil, "multi.x", "re.ply", wire.AppendField(nil, "k", "v"), []byte("payload"), 0))
	got := map[uint32]bool{}
	for _, c := range []*rawClient{a, a, b} {
		f := c.next()
		v, _ := f.Headers.Get("k")
		if string(f.Topic) != "multi.x" || string(f.Reply) != "re.ply" || v != "v" || string(f.Payload) != "payload" || f.Origin.Conn != pub.info.ConnID {
			t.Fatalf("subscription %d got %q %q %q %q from %d", f.ID, f.Topic, f.Reply, v, f.Payload, f.Origin.Conn)
		}
		got[f.ID] = true
	}
	if !got[7] || !got[9] || !got[3] {
		t.Fatalf("subscription ids %v; want 7, 9 and 3", got)
	}
}

// Messages on _STREAM. topics go to queue groups only: a subscriber to ">"
// gets no copy (of the socket a stream request carries), and a request no
// group takes gets no-responders even with such a subscriber present.
func TestStreamTopicsReachQueueGroupsOnly(t *testing.T) {
	_, path := testBroker(t, nil)
	monitor := connectRaw(t, path)
	monitor.sub(1, ">", "")
	monitor.sync()
	dialer := connectRaw(t, path)
	dialer.sub(1, dialer.inbox(">"), "")
	dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"web", dialer.inbox("1"), nil, nil, 0))
	f := dialer.next()
	if v, _ := f.Headers.Get(wire.StatusHeader); f.Origin.Conn != 0 || v != wire.StatusNoResponders {
		t.Fatalf("got %q from conn %d, status %q; want no responders from the broker", f.Topic, f.Origin.Conn, v)
	}
	listener := connectRaw(t, path)
	listener.sub(7, wire.GroupOnlyPrefix+"web", "listeners")
	listener.sync()
	dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"web", dialer.inbox("2"), nil, nil, 0))
	if f := listener.next(); f.ID != 7 || string(f.Topic) != wire.GroupOnlyPrefix+"web" {
		t.Fatalf("listener got %q on %d", f.Topic, f.ID)
	}
	monitor.sync()
	for {
		f, err := monitor.tryNext(100 * time.Millisecond)
		if err != nil {
			break
		}
		if strings.HasPrefix(string(f.Topic), wire.GroupOnlyPrefix) {
			t.Fatalf("the monitor got a copy of %q", f.Topic)
		}
	}
}
