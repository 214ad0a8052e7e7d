package bus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// request sends a broker request to topic with payload v (nil: empty),
// and decodes its answer, which must have no status, into out.
func (c *rawClient) request(topic string, v, out any) {
	c.t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = wire.AppendBody(nil, v); err != nil {
			c.t.Fatal(err)
		}
	}
	c.sub(900, c.inbox(">"), "")
	c.send(wire.AppendPub(nil, topic, c.inbox("s"), nil, body, 0))
	f, status, reason := c.nextAnswer(c.inbox("s"))
	if status != "" {
		c.t.Fatalf("%s answered %s: %s", topic, status, reason)
	}
	if err := wire.DecodeBody(f.Payload, out); err != nil {
		c.t.Fatal(err)
	}
	c.send(wire.AppendControl(nil, wire.OpUnsub, 900, nil))
}

// $SYS.req.stats answers the broker's totals, bytes included, as the
// connections' frames left them.
func TestStatsRequestAnswersTotals(t *testing.T) {
	_, path := testBroker(t, nil)
	sub := subscriber(t, path, "app.>")
	pub := connectRaw(t, path)
	pub.pub("app.x", "hello")
	pub.sync()
	sub.next() // the MSG
	var st wire.BrokerStats
	asker := connectRaw(t, path)
	asker.request(wire.SysReqStats, nil, &st)
	if st.Conns != 3 || st.Subs != 2 || st.MsgsIn != 1 || st.MsgsOut != 1 || st.BytesIn == 0 || st.BytesOut == 0 ||
		st.FDsHeld < 6 || st.FDsMax == 0 || st.Memory <= 0 || st.MemoryMax == 0 || st.Users != 1 {
		t.Fatalf("stats %+v; want 3 conns, 2 subs (one the asker's inbox), 1 message in and out, bytes, descriptors and memory", st)
	}
}

// $SYS.req.conns lists every connection, with its counters, to the
// broker's uid; pages with "after" and "limit"; and says what it left out.
func TestConnsRequestListsConnections(t *testing.T) {
	_, path := testBroker(t, nil)
	sub := subscriber(t, path, "app.>")
	pub := connectRaw(t, path)
	for range 3 {
		pub.pub("app.x", "hello")
	}
	pub.sync()
	for range 3 {
		sub.next()
	}
	asker := connectRaw(t, path)
	var list wire.ConnList
	asker.request(wire.SysReqConns, nil, &list)
	if !list.All || list.Truncated || len(list.Conns) != 3 {
		t.Fatalf("list %+v; want all 3 connections, not truncated", list)
	}
	s, p := list.Conns[0], list.Conns[1]
	if s.ConnID != sub.info.ConnID || p.ConnID != pub.info.ConnID || s.PID != uint32(os.Getpid()) || s.Name != t.Name() {
		t.Fatalf("conns %+v; want the subscriber's then the publisher's, with this process's pid and the test's name", list.Conns)
	}
	if s.Subs != 1 || s.MsgsOut != 3 || s.BytesOut == 0 || p.MsgsIn != 3 || p.BytesIn == 0 || p.Subs != 0 || s.MsgsIn != 0 {
		t.Fatalf("subscriber %+v, publisher %+v; want 3 messages from one to the other", s, p)
	}
	asker.request(wire.SysReqConns, &wire.ListRequest{After: sub.info.ConnID, Limit: 1}, &list)
	if len(list.Conns) != 1 || list.Conns[0].ConnID != pub.info.ConnID || !list.Truncated {
		t.Fatalf("page after %d of 1: %+v; want the publisher, truncated", sub.info.ConnID, list)
	}
}

// A broker request's list is bounded: a limit over MaxListLimit is
// lowered to it.
func TestListRequestLimit(t *testing.T) {
	for _, tc := range []struct {
		payload []byte
		limit   uint64
	}{
		{nil, wire.MaxListLimit},
		{[]byte("\x80"), wire.MaxListLimit},
		{[]byte("\x81\xa5limit\x05"), 5},
		{[]byte("\x81\xa5limit\xcd\xff\xff"), wire.MaxListLimit},
	} {
		req, err := wire.DecodeListRequest(tc.payload)
		if err != nil || req.Limit != tc.limit {
			t.Errorf("DecodeListRequest(%x) = %+v, %v; want limit %d", tc.payload, req, err, tc.limit)
		}
	}
	if _, err := wire.DecodeListRequest([]byte("\x81\xa5after\xff")); err == nil {
		t.Error("a negative after was accepted")
	}
}

// $SYS.req.subs counts the subscriptions of each pattern and group, the
// monitors apart, and truncates past its limit, saying how many there are.
func TestSubsRequestCountsPatterns(t *testing.T) {
	_, path := testBroker(t, nil)
	a, b := connectRaw(t, path), connectRaw(t, path)
	a.sub(1, "app.>", "")
	a.sub(2, "job.*", "workers")
	b.sub(1, "app.>", "")
	b.sub(2, "job.*", "workers")
	b.sub(3, "job.*", "")
	b.send(wire.AppendSub(nil, 4, "app.>", "", wire.SubMonitor))
	b.send(wire.AppendSub(nil, 5, "audit.>", "", wire.SubMonitor))
	a.sync()
	b.sync()
	var list wire.SubList
	a.request(wire.SysReqSubs, nil, &list)
	want := []wire.SubStats{
		{Pattern: a.inbox(">"), Subs: 1}, // the asker's, for the answer
		{Pattern: "app.>", Subs: 2, Monitors: 1}, {Pattern: "audit.>", Monitors: 1},
		{Pattern: "job.*", Subs: 1}, {Pattern: "job.*", Group: "workers", Subs: 2},
	}
	if !list.All || list.Truncated || list.Total != 5 || len(list.Subs) != 5 {
		t.Fatalf("list %+v; want %+v", list, want)
	}
	for i := range want {
		if list.Subs[i] != want[i] {
			t.Fatalf("entry %d is %+v; want %+v", i, list.Subs[i], want[i])
		}
	}
	a.request(wire.SysReqSubs, &wire.ListRequest{Limit: 2}, &list)
	if !list.Truncated || list.Total != 5 || len(list.Subs) != 2 {
		t.Fatalf("list of 2: %+v; want 2 of 5, truncated", list)
	}
}

// dialAs connects to the broker at path as uid: the dialing thread alone
// takes it as its effective uid for the connect, which is what
// SO_PEERCRED records. Only root can.
func dialAs(t *testing.T, path string, uid int) *rawClient {
	t.Helper()
	return dialAsHello(t, path, uid, &wire.Hello{Version: wire.Version, Name: "other"})
}

// dialAsHello is dialAs with hello as the handshake's HELLO.
func dialAsHello(t *testing.T, path string, uid int, hello *wire.Hello) *rawClient {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to connect as another uid")
	}
	for _, p := range []string{filepath.Dir(filepath.Dir(path)), filepath.Dir(path), path} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type dialed struct {
		sock *unixsock.Conn
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		// The thread never goes back to the scheduler: it exits with the
		// goroutine, its uid with it.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- dialed{err: e}
			return
		}
		sock, err := unixsock.Dial(ctx, path)
		ch <- dialed{sock, err}
	}()
	d := <-ch
	if d.err != nil {
		t.Fatal(d.err)
	}
	lim := wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 20, MaxFDs: wire.MaxFDsPerFrame}
	c := &rawClient{t: t, sock: d.sock, in: wire.NewReader(d.sock, &lim)}
	t.Cleanup(func() { d.sock.Close() })
	body, _ := wire.AppendBody(nil, hello)
	c.send(wire.AppendControl(nil, wire.OpHello, 0, body))
	if f := c.next(); f.Op != wire.OpInfo || wire.DecodeBody(f.Payload, &c.info) != nil {
		t.Fatalf("handshake answered with %v", f.Op)
	}
	return c
}

// Under the default rules (and one to subscribe) a uid other than the broker's may ask for the
// lists, which show it only its own uid's connections and subscriptions,
// and may not ask for the totals; a rule granting monitor on a list's
// topic shows it every uid's.
func TestListsShowOtherUIDsTheirOwn(t *testing.T) {
	const other = 4321
	for _, tc := range []struct {
		policy string
		all    bool
	}{
		{"allow uid 4321 subscribe theirs.>", false},
		{"allow uid 4321 subscribe theirs.>\nallow uid 4321 monitor $SYS.req.conns $SYS.req.subs", true},
	} {
		_, path := testBroker(t, withPolicy(t, tc.policy))
		mine := subscriber(t, path, "mine.>")
		theirs := dialAs(t, path, other)
		theirs.sub(1, "theirs.>", "")
		var conns wire.ConnList
		theirs.request(wire.SysReqConns, nil, &conns)
		var subs wire.SubList
		theirs.request(wire.SysReqSubs, nil, &subs)
		if tc.all {
			if !conns.All || len(conns.Conns) != 2 || !subs.All || subs.Total != 3 {
				t.Fatalf("policy %q: conns %+v, subs %+v; want both uids'", tc.policy, conns, subs)
			}
			continue
		}
		if conns.All || len(conns.Conns) != 1 || conns.Conns[0].ConnID != theirs.info.ConnID || conns.Conns[0].UID != other {
			t.Fatalf("conns %+v; want only uid %d's own connection", conns, other)
		}
		if subs.All || subs.Total != 2 || subs.Subs[1].Pattern != "theirs.>" {
			t.Fatalf("subs %+v; want only uid %d's own subscriptions", subs, other)
		}
		theirs.send(wire.AppendPub(nil, wire.SysReqStats, theirs.inbox("t"), nil, nil, 0))
		theirs.expectErr(wire.CodePermissionDenied, wire.SysReqStats)
		mine.sync() // the broker's uid's connection is untouched
	}
}

// $SYS.req.conns shows a stopped subscriber's queue and what it lost.
func TestConnsRequestShowsPendingAndDrops(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.WriteTimeout = time.Minute // it is read late, however slow the machine
	})
	stopped := subscriber(t, path, "flood")
	pub := connectRaw(t, path)
	const n = 4000 // far past the stopped one's socket buffer and queue
	if err := <-publishNumbered(pub, "flood", n, 1024); err != nil {
		t.Fatal(err)
	}
	pub.sync()
	var list wire.ConnList
	connectRaw(t, path).request(wire.SysReqConns, nil, &list)
	s := list.Conns[0]
	if st := srv.Stats(); s.ConnID != stopped.info.ConnID || s.Dropped == 0 || s.Dropped != st.Dropped || s.Pending == 0 || s.MsgsOut+s.Dropped != n {
		t.Fatalf("stopped subscriber %+v (broker dropped %d); want its queue, and its drops and deliveries adding up to %d", s, st.Dropped, n)
	}
	if slow := stopped.account(n); slow.lost != s.Dropped {
		t.Fatalf("the subscriber was told of %d losses; the answer said %d", slow.lost, s.Dropped)
	}
}

// $SYS.req.conns lists the connections that have sent their HELLO, as
// docs/PROTOCOL.md says: one still in its handshake is not listed (it has
// no name yet, and had no up event).
func TestConnsRequestLeavesOutHandshakes(t *testing.T) {
	srv, path := testBroker(t, nil)
	asker := connectRaw(t, path)
	pending := dialRaw(t, path) // no HELLO
	defer pending.sock.Close()
	for srv.Stats().Conns != 2 {
		runtime.Gosched() // until the broker has accepted it
	}
	var list wire.ConnList
	asker.request(wire.SysReqConns, nil, &list)
	if len(list.Conns) != 1 || list.Conns[0].ConnID != asker.info.ConnID {
		t.Fatalf("list %+v; want the asker alone", list)
	}
}

// msgs_out counts the MSGs queued for subscribers, not the broker's
// answers (docs/PROTOCOL.md): neither an earlier request's nor a
// no-responders answer is counted.
func TestStatsMsgsOutLeavesOutAnswers(t *testing.T) {
	_, path := testBroker(t, nil)
	asker := connectRaw(t, path)
	var st wire.BrokerStats
	asker.request(wire.SysReqStats, nil, &st)
	asker.sub(1, asker.inbox("1"), "")
	asker.send(wire.AppendPub(nil, "nobody.here", asker.inbox("1"), nil, nil, 0))
	expectNoResponders(t, asker, asker.inbox("1"), wire.StatusNoResponders)
	asker.request(wire.SysReqStats, nil, &st)
	if st.MsgsOut != 0 {
		t.Fatalf("msgs_out %d after two answers and nothing routed; want 0", st.MsgsOut)
	}
}

// A uid that sees only its own connections asks about them at a cost of
// its own: the broker does not go through every uid's connections, under
// its lock, for each of its requests (the default rules let every uid ask
// in a loop).
func TestOwnListCostsOnlyOwnConns(t *testing.T) {
	srv, err := NewServer(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	const others = 100_000
	srv.mu.Lock()
	for id := range uint64(others) {
		srv.addConnLocked(&conn{srv: srv, id: id + 1, origin: wire.Origin{Conn: id + 1, UID: 7}})
	}
	asker := &conn{srv: srv, id: others + 1, origin: wire.Origin{Conn: others + 1, UID: 8}}
	srv.addConnLocked(asker)
	srv.mu.Unlock()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if got := asker.visibleConns(false); len(got) != 1 || got[0] != asker {
			t.Fatalf("visible %d connections; want the asker's own", len(got))
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("10 requests for one connection of its own allocated %d bytes among %d others'", n, others)
	}
}

// A $SYS.req.subs answer is built from every subscription the asker may
// see, which any uid may ask about its own in a loop, from each of its
// connections at once: what building it takes is charged to the asker's
// user's input budget while it is built, and with no room there the
// answer is 429, not memory the broker holds for nobody's account.
func TestSubsRequestChargesItsBuilding(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Input = 1 << 20 })
	c := connectRaw(t, path)
	c.sub(900, c.inbox(">"), "")
	const n = 1700 // some 880 KiB of the 1 MiB budget, the connection 80 KiB
	var batch []byte
	for i := range n {
		batch = wire.AppendSub(batch, uint32(1000+i), fmt.Sprintf("a.%d", i), "", 0)
	}
	c.send(batch)
	c.sync()
	c.send(wire.AppendPub(nil, wire.SysReqSubs, c.inbox("s"), nil, nil, 0))
	c.expectStatus(c.inbox("s"), wire.StatusNoRoom, "input bytes")
	batch = nil
	for i := range n - 100 {
		batch = wire.AppendControl(batch, wire.OpUnsub, uint32(1000+i), nil)
	}
	batch = wire.AppendControl(batch, wire.OpUnsub, 900, nil) // request subscribes again
	c.send(batch)
	for range 2 { // and the charge is given back
		var list wire.SubList
		c.request(wire.SysReqSubs, nil, &list)
		if list.Total != 101 {
			t.Fatalf("list of %d; want 101", list.Total)
		}
	}
}

// A list answer fits in the payload a client takes: with a small
// max_payload and many long patterns, $SYS.req.subs gives what fits,
// marked truncated, with the total, rather than a MSG no client may read.
func TestListAnswersFitMaxPayload(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.Limits.MaxPayload = 2048 })
	a := connectRaw(t, path)
	long := strings.Repeat("x", 200)
	for i := range 40 {
		a.sub(uint32(i+1), fmt.Sprintf("%s.%d", long, i), "")
	}
	a.sync()
	var list wire.SubList
	a.sub(900, a.inbox(">"), "")
	a.send(wire.AppendPub(nil, wire.SysReqSubs, a.inbox("s"), nil, nil, 0))
	f, status, _ := a.nextAnswer(a.inbox("s"))
	if status != "" || len(f.Payload) > 2048 {
		t.Fatalf("answer: status %q, %d payload bytes; want one of at most max_payload (2048)", status, len(f.Payload))
	}
	if err := wire.DecodeBody(f.Payload, &list); err != nil {
		t.Fatal(err)
	}
	if !list.Truncated || list.Total != 41 || len(list.Subs) == 0 || len(list.Subs) >= 41 {
		t.Fatalf("list of %d of %d, truncated %v; want some of 41, truncated", len(list.Subs), list.Total, list.Truncated)
	}
}
