package bus

import (
	"os"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// monitor connects a raw client with a monitor subscription (id 1) to
// pattern, in place when it returns.
func monitor(t testing.TB, path, pattern string) *rawClient {
	t.Helper()
	c := connectRaw(t, path)
	c.send(wire.AppendSub(nil, 1, pattern, "", wire.SubMonitor))
	c.sync()
	return c
}

// expectMsg reads one frame and checks it is a MSG on topic with payload.
func (c *rawClient) expectMsg(topic, payload string) wire.Frame {
	c.t.Helper()
	f := c.next()
	if f.Op != wire.OpMsg || string(f.Topic) != topic || string(f.Payload) != payload {
		c.t.Fatalf("got %v on %q with %q; want a MSG on %q with %q", f.Op, f.Topic, f.Payload, topic, payload)
	}
	return f
}

// lastFDs returns the last Bus-FDs field of h, the broker's, or "".
func lastFDs(h wire.Headers) string {
	v := ""
	for k, val := range h.All() {
		if string(k) == wire.FDsHeader {
			v = string(val)
		}
	}
	return v
}

// A request to a topic only a monitor matches gets "no responders" at
// once, and the monitor sees the request.
func TestMonitorIsNotAResponder(t *testing.T) {
	_, path := testBroker(t, nil)
	mon := monitor(t, path, ">")
	req := connectRaw(t, path)
	req.sub(1, req.inbox(">"), "")
	req.send(wire.AppendPub(nil, "nobody.here", req.inbox("1"), nil, []byte("x"), 0))
	expectNoResponders(t, req, req.inbox("1"), wire.StatusNoResponders)
	if f := mon.expectMsg("nobody.here", "x"); string(f.Reply) != req.inbox("1") || f.Origin.Conn != req.info.ConnID {
		t.Fatalf("monitor got reply %q origin %+v; want the request's", f.Reply, f.Origin)
	}
	mon.quiet() // the no-responders answer is the requester's alone
}

// A queue group's member gets every job while a monitor of the topic sees
// each one too: the monitor takes nothing from the group.
func TestMonitorLeavesQueueGroupsAlone(t *testing.T) {
	_, path := testBroker(t, nil)
	mon := monitor(t, path, "jobs")
	worker := connectRaw(t, path)
	worker.sub(1, "jobs", "workers")
	worker.sync()
	pub := connectRaw(t, path)
	const n = 50
	for i := range n {
		pub.pub("jobs", string(rune('a'+i%26)))
	}
	pub.sync()
	for i := range n {
		worker.expectMsg("jobs", string(rune('a'+i%26)))
		mon.expectMsg("jobs", string(rune('a'+i%26)))
	}
	worker.quiet()
	mon.quiet()
}

// A dial reaches its listener with its descriptor; a monitor of the
// stream's topic sees it without the descriptor, told there was one, and
// a dial to a stream only a monitor watches fails at once.
func TestMonitorTakesNoDial(t *testing.T) {
	_, path := testBroker(t, nil)
	mon := monitor(t, path, "_STREAM.>")
	lis := connectRaw(t, path)
	lis.sub(1, "_STREAM.x", wire.StreamGroup)
	lis.sync()
	dialer := connectRaw(t, path)
	dialer.sub(1, dialer.inbox(">"), "")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	dialer.send(wire.AppendPub(nil, "_STREAM.x", dialer.inbox("1"), nil, []byte("dial"), 1), int(r.Fd()))
	if f := lis.expectMsg("_STREAM.x", "dial"); f.NFDs != 1 {
		t.Fatalf("listener got %d descriptors; want 1", f.NFDs)
	}
	if f := mon.expectMsg("_STREAM.x", "dial"); f.NFDs != 0 || lastFDs(f.Headers) != "1" {
		t.Fatalf("monitor got %d descriptors, %s %q; want none, and 1", f.NFDs, wire.FDsHeader, lastFDs(f.Headers))
	}
	if n := mon.sock.QueuedFDs(); n != 0 {
		t.Fatalf("the monitor's socket received %d descriptors", n)
	}
	dialer.send(wire.AppendPub(nil, "_STREAM.y", dialer.inbox("2"), nil, []byte("dial"), 1), int(r.Fd()))
	expectNoResponders(t, dialer, dialer.inbox("2"), wire.StatusNoResponders)
	mon.expectMsg("_STREAM.y", "dial")
	mon.quiet()
}

// A message's own Bus-FDs field cannot pass for the broker's: the last
// one a monitor gets is always the true count.
func TestMonitorFDsHeaderCannotBeForged(t *testing.T) {
	_, path := testBroker(t, nil)
	mon := monitor(t, path, "a")
	pub := connectRaw(t, path)
	pub.send(wire.AppendPub(nil, "a", "", wire.AppendField(nil, wire.FDsHeader, "9"), []byte("p"), 0))
	if f := mon.expectMsg("a", "p"); lastFDs(f.Headers) != "0" {
		t.Fatalf("last %s is %q; want the broker's 0", wire.FDsHeader, lastFDs(f.Headers))
	}
	pub.pub("a", "q")
	if f := mon.expectMsg("a", "q"); len(f.Headers) != 0 {
		t.Fatalf("headers %q on a message without descriptors; want none", f.Headers)
	}
}

// Other connections' replies reach a monitor only with the monitor verb,
// and it may answer none of the requests it sees.
func TestMonitorSeesRepliesOnlyWithTheVerb(t *testing.T) {
	for _, tc := range []struct {
		policy  string
		replies bool
	}{
		{"", false},
		{"allow uid %me monitor >", true},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			_, path := testBroker(t, withPolicy(t, tc.policy))
			mon := monitor(t, path, ">")
			svc := connectRaw(t, path)
			svc.sub(1, "svc", "")
			svc.sync()
			req := connectRaw(t, path)
			req.sub(1, req.inbox(">"), "")
			req.send(wire.AppendPub(nil, "svc", req.inbox("1"), nil, []byte("ask"), 0))
			svc.expectMsg("svc", "ask")
			svc.send(wire.AppendPub(nil, req.inbox("1"), "", nil, []byte("answer"), 0))
			svc.sync() // routed, to the monitor too
			req.expectMsg(req.inbox("1"), "answer")
			mon.expectMsg("svc", "ask")
			if tc.replies {
				mon.expectMsg(req.inbox("1"), "answer")
			}
			// Seeing a request gives a monitor no permit to answer it.
			mon.send(wire.AppendPub(nil, req.inbox("1"), "", nil, []byte("forged"), 0))
			mon.expectErr(wire.CodePermissionDenied, "")
			mon.quiet()
		})
	}
}

// A monitor joins no queue group and never asks to be disconnected.
func TestMonitorSubRefusals(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.send(wire.AppendSub(nil, 1, "a", "g", wire.SubMonitor))
	c.expectErr(wire.CodeInvalidGroup, "joins no queue group")
	c.send(wire.AppendSub(nil, 2, "a", "", wire.SubMonitor|wire.SubDisconnect))
	c.expectErr(wire.CodeBadFrame, "always drops")
	c.expectClosed()
}

// A monitor that never reads never holds a publisher up: no stall is
// recorded, what it has no room for is dropped and counted, and once it
// reads it gets a gap notice for it.
func TestStoppedMonitorNeverStallsAPublisher(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.StallBudget = time.Minute // a single wait would show
	})
	mon := monitor(t, path, "flood")
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "flood", 4000, 1024); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Stalls != 0 || st.Lagging != 0 || st.Dropped == 0 {
		t.Fatalf("stats %+v; want no stalls nor laggards, and drops", st)
	}
	for {
		f := mon.next()
		if _, gap := f.Headers.Get(wire.DroppedHeader); gap && f.Origin.Conn == 0 {
			break
		}
	}
}

// A client that opens as many monitors as it may, on several connections,
// and never reads, is bounded like any subscriber: its subscriptions by
// MaxSubs, what each connection holds by MaxPending, and no publisher
// waits for any of them.
func TestManyStoppedMonitorsAreBounded(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.MaxSubs = 3
		c.StallBudget = time.Minute
	})
	var mons []*rawClient
	for range 4 {
		c := connectRaw(t, path)
		for i, p := range []string{">", "*", "flood"} {
			c.send(wire.AppendSub(nil, uint32(i+1), p, "", wire.SubMonitor))
		}
		c.send(wire.AppendSub(nil, 4, "flood.x", "", wire.SubMonitor))
		c.expectErr(wire.CodeTooManySubs, "the limit")
		mons = append(mons, c)
	}
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "flood", 4000, 1024); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Stalls != 0 || st.Dropped == 0 {
		t.Fatalf("stats %+v; want no stalls, and drops", st)
	}
	for _, m := range mons {
		sc := srv.connOf(m)
		sc.mu.Lock()
		pending := sc.pending
		sc.mu.Unlock()
		if limit := srv.cfg.MaxPending + 2048; pending > limit {
			t.Fatalf("a stopped monitor's connection holds %d bytes; want at most %d", pending, limit)
		}
	}
}

// A large message with a descriptor (read in pieces) reaches a monitor
// whole, without the descriptor; after its UNSUB the monitor gets nothing
// more and the broker counts no monitor.
func TestMonitorLargeMessageWithFDThenUnsub(t *testing.T) {
	srv, path := testBroker(t, nil)
	mon := monitor(t, path, "big")
	pub := connectRaw(t, path)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	payload := make([]byte, 1<<20) // over the read buffer: read in pieces
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	pub.send(wire.AppendPub(nil, "big", "", wire.AppendField(nil, "k", "v"), payload, 1), int(r.Fd()))
	f := mon.next()
	if f.NFDs != 0 || lastFDs(f.Headers) != "1" || string(f.Payload) != string(payload) {
		t.Fatalf("monitor got %d descriptors, %s %q, %d bytes; want none, 1, the payload", f.NFDs, wire.FDsHeader, lastFDs(f.Headers), len(f.Payload))
	}
	if v, _ := f.Headers.Get("k"); v != "v" {
		t.Fatalf("headers %q; want the sender's kept", f.Headers)
	}
	mon.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	mon.sync()
	pub.pub("big", "after")
	pub.sync()
	mon.quiet()
	if n := srv.nMonitors.Load(); n != 0 {
		t.Fatalf("%d monitors counted after the UNSUB", n)
	}
}
