package bus

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// withPolicy returns a config edit that installs a policy; %me in text
// stands for the test's own uid.
func withPolicy(t testing.TB, text string) func(*Config) {
	t.Helper()
	p, err := policy.Parse("test.policy", strings.NewReader(strings.ReplaceAll(text, "%me", fmt.Sprint(os.Getuid()))))
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Policy = p }
}

// quiet checks that nothing was queued for c before the frames others
// have had handled: its PONG comes first. Call it after the sender's
// sync, which returns once the sender's frames are routed.
func (c *rawClient) quiet() { c.t.Helper(); c.sync() }

// A reply reaches only the requester: a third party subscribed to ">" and
// to every inbox pattern it may take sees the request (it asked for its
// topic) but not the reply; naming the requester's inbox is refused.
func TestReplyReachesOnlyTheRequester(t *testing.T) {
	_, path := testBroker(t, nil)
	requester, service, spy := connectRaw(t, path), connectRaw(t, path), connectRaw(t, path)
	if requester.info.Inbox != fmt.Sprintf("_INBOX.%d", requester.info.ConnID) {
		t.Fatalf("INFO inbox %q for conn %d", requester.info.Inbox, requester.info.ConnID)
	}
	spy.sub(1, requester.inbox(">"), "")
	spy.expectErr(wire.CodePermissionDenied, `subscription to another connection's inbox "`+requester.inbox(">")+`" denied by the default rule`)
	spy.sub(2, ">", "")
	spy.sub(3, "_INBOX.>", "")
	spy.sub(4, "_INBOX.*.*", "")
	spy.sub(5, "_INBOX.>", "spies")
	spy.sync()
	service.sub(1, "svc", "")
	service.sync()
	requester.sub(1, requester.inbox(">"), "")
	requester.send(wire.AppendPub(nil, "svc", requester.inbox("1"), nil, []byte("q"), 0))
	req := service.next()
	if string(req.Reply) != requester.inbox("1") {
		t.Fatalf("service got reply topic %q", req.Reply)
	}
	if f := spy.next(); f.ID != 2 || string(f.Topic) != "svc" {
		t.Fatalf("spy got %q on %d; want the request on its \">\"", f.Topic, f.ID)
	}
	service.send(wire.AppendPub(nil, string(req.Reply), "", nil, []byte("a"), 0))
	service.sync()
	if f := requester.next(); string(f.Payload) != "a" || f.Origin.Conn != service.info.ConnID {
		t.Fatalf("requester got %q from %d", f.Payload, f.Origin.Conn)
	}
	spy.quiet()
}

// Only a connection a request was delivered to may answer it, once; a
// third party's forged reply is refused and never reaches the requester.
func TestForgedRepliesAreRefused(t *testing.T) {
	srv, path := testBroker(t, nil)
	requester, service, forger := connectRaw(t, path), connectRaw(t, path), connectRaw(t, path)
	service.sub(1, "svc", "")
	service.sync()
	requester.sub(1, requester.inbox(">"), "")
	requester.send(wire.AppendPub(nil, "svc", requester.inbox("7"), nil, nil, 0))
	service.next()
	before := srv.Stats().Denied
	forger.send(wire.AppendPub(nil, requester.inbox("7"), "", nil, []byte("forged"), 0))
	forger.expectErr(wire.CodePermissionDenied, "no request with this reply topic was delivered to this connection")
	forger.send(wire.AppendPub(nil, requester.inbox("8"), "", nil, []byte("unasked"), 0))
	forger.expectErr(wire.CodePermissionDenied, "in another connection's inbox")
	service.send(wire.AppendPub(nil, requester.inbox("7"), "", nil, []byte("real"), 0))
	service.send(wire.AppendPub(nil, requester.inbox("7"), "", nil, []byte("again"), 0))
	service.expectErr(wire.CodePermissionDenied, "answered already")
	if f := requester.next(); string(f.Payload) != "real" {
		t.Fatalf("requester got %q; want the real reply first and only", f.Payload)
	}
	requester.quiet()
	if d := srv.Stats().Denied - before; d != 3 {
		t.Errorf("Stats().Denied went up by %d; want 3", d)
	}
	// A request's reply topic must be in the requester's own inbox: else
	// its responder would get a permit to write into someone else's.
	forger.send(wire.AppendPub(nil, "svc", requester.inbox("9"), nil, nil, 0))
	forger.expectErr(wire.CodePermissionDenied, "is in another connection's inbox")
	service.quiet()
}

// A connection holds at most MaxReplyPermits; past that the oldest
// requests can no longer be answered, and that is counted.
func TestReplyPermitsAreBounded(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.MaxReplyPermits = 8 }) // 2 per requester
	service := connectRaw(t, path)
	service.sub(1, "svc", "")
	service.sync()
	var requesters []*rawClient
	for range 5 { // 10 requests for 8 permits: the first requester's two go
		r := connectRaw(t, path)
		r.sub(1, r.inbox(">"), "")
		for i := range 2 {
			r.send(wire.AppendPub(nil, "svc", r.inbox(fmt.Sprint(i)), nil, nil, 0))
		}
		r.sync()
		requesters = append(requesters, r)
	}
	for range 10 {
		service.next()
	}
	for n, r := range requesters {
		for i := range 2 {
			service.send(wire.AppendPub(nil, r.inbox(fmt.Sprint(i)), "", nil, []byte(fmt.Sprint(i)), 0))
			if n == 0 {
				service.expectErr(wire.CodePermissionDenied, "no request with this reply topic")
			}
		}
	}
	service.sync()
	for _, r := range requesters[1:] {
		for i := range 2 {
			if f := r.next(); string(f.Payload) != fmt.Sprint(i) {
				t.Fatalf("got reply %q; want %d", f.Payload, i)
			}
		}
	}
	requesters[0].quiet()
	if n := srv.Stats().PermitsForgotten; n != 2 {
		t.Errorf("PermitsForgotten = %d; want 2", n)
	}
}

// One connection flooding a service with requests gets a quarter of its
// permits at most: past that its own requests cannot be answered, and the
// requests of others stay answerable.
func TestOneRequesterCannotEvictOthers(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.MaxReplyPermits = 8 }) // 2 per requester
	service, victim, flooder := connectRaw(t, path), connectRaw(t, path), connectRaw(t, path)
	service.sub(1, "svc", "")
	service.sync()
	victim.sub(1, victim.inbox(">"), "")
	victim.send(wire.AppendPub(nil, "svc", victim.inbox("1"), nil, nil, 0))
	victim.sync()
	flooder.sub(1, flooder.inbox(">"), "")
	for i := range 10 {
		flooder.send(wire.AppendPub(nil, "svc", flooder.inbox(fmt.Sprint(i)), nil, nil, 0))
	}
	flooder.sync()
	for range 11 {
		service.next()
	}
	service.send(wire.AppendPub(nil, victim.inbox("1"), "", nil, []byte("yours"), 0))
	service.sync()
	if f := victim.next(); string(f.Payload) != "yours" {
		t.Fatalf("victim got %q", f.Payload)
	}
	for i := range 10 {
		service.send(wire.AppendPub(nil, flooder.inbox(fmt.Sprint(i)), "", nil, nil, 0))
		if i >= 2 {
			service.expectErr(wire.CodePermissionDenied, "past 2 from one connection, its newest get none")
		}
	}
	if n := srv.Stats().PermitsForgotten; n != 8 {
		t.Errorf("PermitsForgotten = %d; want 8", n)
	}
}

// A monitor sees other connections' replies only when the policy names it
// with the monitor verb; the broker's own uid does not get it by default.
func TestMonitoringInboxesIsPolicy(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "allow uid %me monitor _INBOX.>"))
	requester, service, monitor := connectRaw(t, path), connectRaw(t, path), connectRaw(t, path)
	monitor.sub(1, "_INBOX.>", "")
	monitor.sub(2, requester.inbox(">"), "")
	monitor.sync()
	service.sub(1, "svc", "")
	service.sync()
	requester.sub(1, requester.inbox(">"), "")
	requester.send(wire.AppendPub(nil, "svc", requester.inbox("1"), nil, nil, 0))
	service.next()
	service.send(wire.AppendPub(nil, requester.inbox("1"), "", nil, []byte("a"), 0))
	service.sync()
	requester.next()
	got := map[uint32]bool{}
	for range 2 {
		f := monitor.next()
		if string(f.Payload) != "a" {
			t.Fatalf("monitor got %q", f.Payload)
		}
		got[f.ID] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("monitor's subscriptions that got the reply: %v; want 1 and 2", got)
	}
}

// The policy decides publish and subscribe by the first rule that speaks
// for the topic; a denial names the rule, and a subscription whose
// pattern the rules split receives only what they allow.
func TestPolicyDecidesPublishAndSubscribe(t *testing.T) {
	srv, path := testBroker(t, withPolicy(t, `
deny  uid %me publish  secret.>
deny  uid %me subscribe secret.>
allow uid %me all >
`))
	c := connectRaw(t, path)
	c.pub("secret.plans", "x")
	e := c.expectErr(wire.CodePermissionDenied, `publish to "secret.plans" denied by rule at line 2 (deny uid `)
	if e.Op != wire.OpPub {
		t.Errorf("ERR op %d; want PUB", e.Op)
	}
	c.sub(1, "secret.>", "")
	c.expectErr(wire.CodePermissionDenied, `subscription to "secret.>" denied by rule at line 3`)
	c.sub(2, ">", "") // allowed, filtered: nothing under secret.
	c.sync()

	// Messages on secret. topics from the broker's point of view come only
	// from someone allowed to publish them: a second policy lets us.
	srv.SetPolicy(mustPolicy(t, "deny uid %me subscribe secret.>\nallow uid %me all >"))
	c.pub("secret.plans", "hidden")
	c.pub("open.news", "shown")
	if f := c.next(); f.ID != 2 || string(f.Payload) != "shown" {
		t.Fatalf("got %q on %d; want only the open message", f.Payload, f.ID)
	}
	c.quiet()
	// A policy that denies the whole pattern stops it at once.
	srv.SetPolicy(mustPolicy(t, "deny uid %me subscribe >\nallow uid %me all >"))
	c.pub("open.news", "after")
	c.quiet()
	if s := srv.Stats(); s.Denied != 2 {
		t.Errorf("Stats().Denied = %d; want 2", s.Denied)
	}
}

func mustPolicy(t testing.TB, text string) *policy.Policy {
	t.Helper()
	cfg := Config{}
	withPolicy(t, text)(&cfg)
	return cfg.Policy
}

// A reply the policy does not allow is refused naming the rule, though a
// permit was given: the requester hears nothing from that responder.
func TestReplyVerb(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "deny uid %me reply admin.>\nallow uid %me all >"))
	requester, service := connectRaw(t, path), connectRaw(t, path)
	service.sub(1, "admin.reset", "")
	service.sub(2, "user.get", "")
	service.sync()
	requester.sub(1, requester.inbox(">"), "")
	requester.send(wire.AppendPub(nil, "admin.reset", requester.inbox("1"), nil, nil, 0))
	requester.send(wire.AppendPub(nil, "user.get", requester.inbox("2"), nil, nil, 0))
	service.next()
	service.next()
	service.send(wire.AppendPub(nil, requester.inbox("1"), "", nil, []byte("done"), 0))
	service.expectErr(wire.CodePermissionDenied, `reply to "`+requester.inbox("1")+`" denied by rule at line 1 (deny uid`)
	service.send(wire.AppendPub(nil, requester.inbox("2"), "", nil, []byte("user"), 0))
	if f := requester.next(); string(f.Payload) != "user" {
		t.Fatalf("requester got %q", f.Payload)
	}
}

// SetPolicy while connections come, subscribe and publish: the race
// detector's test of the policy's hand-over, and every connection ends up
// under the last policy, those that connected during the swaps included.
func TestSetPolicyWhileBusy(t *testing.T) {
	srv, path := testBroker(t, nil)
	allowAll := mustPolicy(t, "allow uid %me all >")
	denyPub := mustPolicy(t, "deny uid %me publish busy.>\nallow uid %me all >")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			srv.SetPolicy([]*policy.Policy{allowAll, denyPub}[i%2])
		}
		srv.SetPolicy(denyPub)
	}()
	var conns []*rawClient
	for range 20 {
		c := connectRaw(t, path)
		c.sub(1, "busy.>", "")
		c.sub(2, ">", "")
		c.sync()
		conns = append(conns, c)
	}
	<-done
	for _, c := range conns {
		c.pub("busy.x", "")
		c.expectErr(wire.CodePermissionDenied, `publish to "busy.x" denied by rule at line 1`)
	}
}

// A SUB decided under one policy while SetPolicy installs another must
// not keep the first one's verdict: SetPolicy reviews only the
// subscriptions listed when it reaches the connection, so one decided
// before and listed after would receive, for ever, what the new policy
// denies. The hook runs SetPolicy at that point of the SUB.
func TestSubscribeRacingSetPolicy(t *testing.T) {
	var srv atomic.Pointer[Server] // the hook runs on the connection's reader
	var fired atomic.Bool
	deny := mustPolicy(t, "deny uid %me subscribe secret.>\nallow uid %me all >")
	s, path := testBroker(t, func(c *Config) {
		c.hooks = &hooks{subDecided: func() {
			if fired.CompareAndSwap(false, true) {
				srv.Load().SetPolicy(deny)
			}
		}}
	})
	srv.Store(s)
	c, pub := connectRaw(t, path), connectRaw(t, path)
	c.sub(1, "secret.>", "")
	c.send(wire.AppendControl(nil, wire.OpPing, 99, nil)) // a PONG first would say the SUB was accepted
	c.expectErr(wire.CodePermissionDenied, `subscription to "secret.>" denied by rule at line 1`)
	if f := c.next(); f.Op != wire.OpPong {
		t.Fatalf("got %v; want PONG", f.Op)
	}
	pub.pub("secret.x", "hidden")
	pub.sync()
	c.quiet()
}

// Two SetPolicy calls at once end with every connection under the policy
// the server stored last, whichever reached a connection first. The hook
// runs the second call, whole, while the first is about to apply its
// policy to the connection.
func TestSetPolicyRacingSetPolicy(t *testing.T) {
	var srv *Server
	var fired atomic.Bool
	first := mustPolicy(t, "allow uid %me all >")
	last := mustPolicy(t, "deny uid %me publish busy.>\nallow uid %me all >")
	srv, path := testBroker(t, func(c *Config) {
		c.hooks = &hooks{applyPolicy: func() {
			if fired.CompareAndSwap(false, true) {
				srv.SetPolicy(last) // re-entered: it must not wait for the call it is inside
			}
		}}
	})
	c := connectRaw(t, path)
	c.sub(1, "busy.>", "")
	c.sync()
	srv.SetPolicy(first)
	c.pub("busy.x", "")
	c.expectErr(wire.CodePermissionDenied, `publish to "busy.x" denied by rule at line 1`)
	c.quiet()
}

// Whether a request may be answered is decided when it is delivered: a
// permit keeps the verdict, not the request's topic, so a reload that
// withdraws the reply verb applies to the requests delivered after it
// (docs/SECURITY.md, "The policy").
func TestReplyIsDecidedWhenTheRequestIsDelivered(t *testing.T) {
	srv, path := testBroker(t, withPolicy(t, "allow uid %me all >"))
	requester, service := connectRaw(t, path), connectRaw(t, path)
	service.sub(1, "admin.reset", "")
	service.sync()
	requester.sub(1, requester.inbox(">"), "")
	requester.send(wire.AppendPub(nil, "admin.reset", requester.inbox("before"), nil, nil, 0))
	service.next()
	srv.SetPolicy(mustPolicy(t, "deny uid %me reply admin.>\nallow uid %me all >"))
	requester.send(wire.AppendPub(nil, "admin.reset", requester.inbox("after"), nil, nil, 0))
	service.next()
	service.send(wire.AppendPub(nil, requester.inbox("after"), "", nil, []byte("after"), 0))
	service.expectErr(wire.CodePermissionDenied, `reply to "`+requester.inbox("after")+`" denied by rule at line 1`)
	service.send(wire.AppendPub(nil, requester.inbox("before"), "", nil, []byte("before"), 0))
	service.sync()
	if f := requester.next(); string(f.Payload) != "before" {
		t.Fatalf("requester got %q; want the answer to the request delivered before the reload", f.Payload)
	}
	requester.quiet()
}

// drainFrames sends a PING and returns the frames that came before its
// PONG, closing the descriptors they carried.
func (c *rawClient) drainFrames() []wire.Frame {
	c.t.Helper()
	c.send(wire.AppendControl(nil, wire.OpPing, 98, nil))
	var got []wire.Frame
	for {
		f := c.next()
		if f.Op == wire.OpPong && f.ID == 98 {
			return got
		}
		if f.NFDs > 0 {
			fds, err := c.sock.TakeFDs(int(f.NFDs))
			if err != nil {
				c.t.Fatal(err)
			}
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		got = append(got, f)
	}
}

// What is published in an inbox reaches its owner alone, however it is
// spelled and carried: a reply to the bare inbox topic and to deeper
// ones, a reply carrying a descriptor, one large enough to be read in
// pieces, the broker's answers; and whatever the spies subscribe to,
// plainly or in queue groups, the owner's own group among them, whether
// they subscribed before the owner connected or after.
func TestInboxPrivacyAgainstEverySpy(t *testing.T) {
	_, path := testBroker(t, nil)
	spy := func() *rawClient {
		s := connectRaw(t, path)
		for i, p := range []string{">", "*", "*.*", "*.>", "*.*.>", "*.*.*", "_INBOX.>", "_INBOX.*", "_INBOX.*.>", "_INBOX.*.*"} {
			s.sub(uint32(3*i+1), p, "")
			s.sub(uint32(3*i+2), p, "spies")
			s.sub(uint32(3*i+3), p, "mine") // the owner's group
		}
		s.sync()
		return s
	}
	before := spy()
	requester, service := connectRaw(t, path), connectRaw(t, path)
	after := spy()
	service.sub(1, "svc", "")
	service.sync()
	requester.sub(1, requester.info.Inbox, "")
	requester.sub(2, requester.info.Inbox, "mine")
	requester.sub(3, requester.inbox(">"), "")
	requester.sub(4, requester.inbox(">"), "mine")
	requester.sync()
	big := strings.Repeat("x", 3*wire.ChunkSize)
	for i, reply := range []string{requester.info.Inbox, requester.inbox("a"), requester.inbox("a.b.c")} {
		requester.send(wire.AppendPub(nil, "svc", reply, nil, nil, 0))
		if req := service.next(); string(req.Reply) != reply {
			t.Fatalf("service got reply topic %q; want %q", req.Reply, reply)
		}
		payload := []byte("small")
		if i == 1 {
			payload = []byte(big)
		}
		sp := socketpairFDs(t)
		service.send(wire.AppendPub(nil, reply, "", nil, payload, 1), sp[1])
		unix.Close(sp[0])
		unix.Close(sp[1])
		service.sync()
		if got := requester.drainFrames(); len(got) != 2 || len(got[0].Payload) != len(payload) {
			t.Fatalf("reply on %q: the requester got %d messages; want one on each matching subscription of its own, plain and in its group", reply, len(got))
		}
		for _, s := range []*rawClient{before, after} {
			for _, f := range s.drainFrames() {
				if string(f.Topic) != "svc" {
					t.Fatalf("a spy got %q on subscription %d", f.Topic, f.ID)
				}
			}
		}
	}
	// The broker's answers: to a broker request, and no responders (to a
	// stream nobody listens on, as every topic else reaches the spies).
	requester.connRequest(service.info.ConnID, requester.inbox("who"))
	requester.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"nobody", requester.inbox("nr"), nil, nil, 0))
	got := requester.drainFrames()
	for _, f := range got {
		if f.Origin.Conn != 0 {
			t.Fatalf("the requester got %q from %d; want only the broker's answers", f.Topic, f.Origin.Conn)
		}
	}
	if len(got) != 4 {
		t.Fatalf("the requester got %d answers; want each of two on its plain subscription and its group's", len(got))
	}
	for _, s := range []*rawClient{before, after} {
		for _, f := range s.drainFrames() {
			t.Fatalf("a spy got %q on subscription %d", f.Topic, f.ID)
		}
	}
}

// Only the queue group member a request reached may answer it; and no
// spelling of another connection's inbox (the bare inbox, a deeper topic,
// a leading zero, conn 0) gets a connection into it: not as a reply topic
// of a request, a broker request or a dial, not as a topic, not as a SUB.
func TestNoWayIntoAnotherInbox(t *testing.T) {
	_, path := testBroker(t, nil)
	requester, s1, s2 := connectRaw(t, path), connectRaw(t, path), connectRaw(t, path)
	for _, s := range []*rawClient{s1, s2} {
		s.sub(1, "svc", "workers")
		s.sync()
	}
	requester.sub(1, requester.inbox(">"), "")
	const n = 10
	for i := range n {
		requester.send(wire.AppendPub(nil, "svc", requester.inbox(fmt.Sprint(i)), nil, nil, 0))
	}
	requester.sync()
	got1, got2 := s1.drainFrames(), s2.drainFrames()
	if len(got1)+len(got2) != n {
		t.Fatalf("the group got %d+%d requests; want %d in all", len(got1), len(got2), n)
	}
	for _, c := range []struct {
		other *rawClient
		got   []wire.Frame
	}{{s2, got1}, {s1, got2}} {
		for _, f := range c.got {
			c.other.send(wire.AppendPub(nil, string(f.Reply), "", nil, []byte("not mine"), 0))
			c.other.expectErr(wire.CodePermissionDenied, "no request with this reply topic was delivered to this connection")
		}
	}
	victim := s1.info.ConnID
	for _, in := range []string{s1.info.Inbox, s1.inbox("x"), fmt.Sprintf("_INBOX.0%d", victim), "_INBOX.0.x"} {
		requester.send(wire.AppendPub(nil, "svc", in, nil, nil, 0))
		requester.expectErr(wire.CodePermissionDenied, "is in another connection's inbox")
		requester.connRequest(victim, in)
		requester.expectErr(wire.CodePermissionDenied, "is in another connection's inbox")
		sp := socketpairFDs(t)
		requester.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"chat", in, nil, nil, 1), sp[1])
		unix.Close(sp[0])
		unix.Close(sp[1])
		requester.expectErr(wire.CodePermissionDenied, "is in another connection's inbox")
		requester.send(wire.AppendPub(nil, in, "", nil, nil, 0))
		requester.expectErr(wire.CodePermissionDenied, "no request with this reply topic")
		requester.sub(2, in, "")
		requester.expectErr(wire.CodePermissionDenied, "subscription to another connection's inbox")
	}
	requester.quiet()
	s1.quiet()
}
