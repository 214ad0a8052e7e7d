package bus

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// setWill sends a $SYS.req.will request and returns the answer's status
// and reason ("" for a will set or cleared).
func (c *rawClient) setWill(req *wire.WillRequest) (status, reason string) {
	c.t.Helper()
	var body []byte
	if req != nil {
		var err error
		if body, err = wire.AppendBody(nil, req); err != nil {
			c.t.Fatal(err)
		}
	}
	c.sub(901, c.inbox("will"), "")
	c.send(wire.AppendPub(nil, wire.SysReqWill, c.inbox("will"), nil, body, 0))
	f, status, reason := c.nextAnswer(c.inbox("will"))
	if status == "" && (len(f.Payload) != 0 || len(f.Headers) != 0) {
		c.t.Fatalf("will answer with %d payload bytes and headers %q; want an empty MSG", len(f.Payload), f.Headers)
	}
	c.send(wire.AppendControl(nil, wire.OpUnsub, 901, nil))
	c.sync()
	return status, reason
}

// downWatcher subscribes (id 1) to wills on "will.>" and (id 2) to
// connections' down events, so that a will, published before the down
// event, is known to have been published or not.
func downWatcher(t *testing.T, path string) *rawClient {
	w := connectRaw(t, path)
	w.sub(1, "will.>", "")
	w.sub(2, "$SYS.conn.down.>", "")
	w.sync()
	return w
}

// expectDown reads the down event of connection id; every will before it
// must be on will.<id>, and it returns their payloads.
func (w *rawClient) expectDown(id uint64) []string {
	w.t.Helper()
	var wills []string
	for {
		f := w.next()
		if f.Op != wire.OpMsg {
			w.t.Fatalf("got %v; want MSG", f.Op)
		}
		if f.ID == 2 {
			if !strings.HasSuffix(string(f.Topic), "."+strconv.FormatUint(id, 10)) {
				continue
			}
			return wills
		}
		if f.Origin.Conn != id || string(f.Topic) != "will."+strconv.FormatUint(id, 10) {
			w.t.Fatalf("will on %q from conn %d; want conn %d's", f.Topic, f.Origin.Conn, id)
		}
		wills = append(wills, string(f.Payload))
	}
}

// A connection killed with its will set has it published, from it; one
// that clears its will first (the clean goodbye) has nothing published.
func TestWillPublishedUnlessCleared(t *testing.T) {
	_, path := testBroker(t, nil)
	w := downWatcher(t, path)

	killed := connectRaw(t, path)
	id := killed.info.ConnID
	topic := "will." + strconv.FormatUint(id, 10)
	hdrs := wire.AppendField(nil, "k", "v")
	if st, why := killed.setWill(&wire.WillRequest{Topic: topic, Headers: hdrs, Payload: []byte("first")}); st != "" {
		t.Fatalf("will refused: %s %s", st, why)
	}
	// A second one replaces it.
	if st, why := killed.setWill(&wire.WillRequest{Topic: topic, Headers: hdrs, Payload: []byte("gone")}); st != "" {
		t.Fatalf("will refused: %s %s", st, why)
	}
	killed.sock.Close()
	if got := w.expectDown(id); len(got) != 1 || got[0] != "gone" {
		t.Fatalf("wills %q; want the last one set, once", got)
	}

	clean := connectRaw(t, path)
	topic = "will." + strconv.FormatUint(clean.info.ConnID, 10)
	clean.setWill(&wire.WillRequest{Topic: topic, Payload: []byte("x")})
	if st, _ := clean.setWill(nil); st != "" {
		t.Fatalf("clearing the will answered %s", st)
	}
	clean.sock.Close()
	if got := w.expectDown(clean.info.ConnID); len(got) != 0 {
		t.Fatalf("wills %q after a clean goodbye; want none", got)
	}
}

// A connection the broker closes for a protocol error, or as a slow
// consumer, has its will published too.
func TestWillPublishedOnFatalError(t *testing.T) {
	srv, path := testBroker(t, nil)
	w := downWatcher(t, path)
	bad := connectRaw(t, path)
	id := bad.info.ConnID
	bad.setWill(&wire.WillRequest{Topic: "will." + strconv.FormatUint(id, 10), Payload: []byte("crashed")})
	if n := inputHeld(srv); n == 0 {
		t.Fatal("no input charged")
	}
	bad.send(wire.AppendControl(nil, wire.OpInfo, 0, nil)) // clients may not send INFO: fatal
	bad.expectErr(wire.CodeUnknownOp, "")
	if got := w.expectDown(id); len(got) != 1 || got[0] != "crashed" {
		t.Fatalf("wills %q; want the will", got)
	}
}

func inputHeld(srv *Server) int64 {
	srv.led.mu.Lock()
	defer srv.led.mu.Unlock()
	var n int64
	for _, a := range srv.led.users {
		n += a.used[kInput]
	}
	return n
}

// A retained will is kept as its topic's value once published.
func TestWillRetained(t *testing.T) {
	_, path := testBroker(t, nil)
	w := downWatcher(t, path)
	c := connectRaw(t, path)
	topic := "will." + strconv.FormatUint(c.info.ConnID, 10)
	c.setWill(&wire.WillRequest{Topic: topic, Payload: []byte("offline"), Retain: true})
	c.retain(topic, "online")
	c.sock.Close()
	if got := w.expectDown(c.info.ConnID); len(got) != 2 || got[1] != "offline" {
		t.Fatalf("messages %q; want online, then the will", got)
	}
	late := connectRaw(t, path)
	late.subRetained(1, topic, 0)
	if f := late.expectValue(1, topic, "offline", true); f.Origin.Conn != c.info.ConnID {
		t.Fatalf("retained will from conn %d; want %d", f.Origin.Conn, c.info.ConnID)
	}
}

// A will is bounded like a retained value, must be a topic the connection
// may publish to, and is charged to its user while set; refusals are
// statuses, the will unchanged.
func TestWillRefusals(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.MaxRetained = 64 })
	c := connectRaw(t, path)
	before := inputHeld(srv)
	for _, tc := range []struct {
		req    wire.WillRequest
		status string
		reason string
	}{
		{wire.WillRequest{Topic: "a..b"}, wire.StatusBadRequest, "token 2 is empty"},
		{wire.WillRequest{Topic: "$SYS.x"}, wire.StatusBadRequest, "not published to topics"},
		{wire.WillRequest{Topic: c.inbox("x")}, wire.StatusBadRequest, "not published to topics"},
		{wire.WillRequest{Topic: "_STREAM.x"}, wire.StatusBadRequest, "not published to topics"},
		{wire.WillRequest{Topic: "a", Headers: []byte{0, 1}}, wire.StatusBadRequest, "headers"},
		{wire.WillRequest{Topic: "a", Payload: make([]byte, 64)}, wire.StatusBadRequest, "max_retained is 64"},
		// A frame read in pieces: the answer names the will request's bound.
		{wire.WillRequest{Topic: "a", Payload: make([]byte, 4*wire.MaxWillRequest)}, wire.StatusBadRequest,
			fmt.Sprintf("a %s request is one frame of at most 64 KiB, its payload at most %d", wire.SysReqWill, wire.MaxWillRequest)},
	} {
		if st, why := c.setWill(&tc.req); st != tc.status || !strings.Contains(why, tc.reason) {
			t.Fatalf("will %+v: answered %q %q; want %s saying %q", tc.req, st, why, tc.status, tc.reason)
		}
	}
	if st, _ := c.setWill(&wire.WillRequest{Topic: "a", Payload: make([]byte, 63)}); st != "" {
		t.Fatalf("a will of max_retained bytes answered %s", st)
	}
	if d := inputHeld(srv) - before; d != retainCost(1, 0, 63) {
		t.Fatalf("will charged %d input bytes; want %d", d, retainCost(1, 0, 63))
	}
	c.setWill(nil)
	if d := inputHeld(srv) - before; d != 0 {
		t.Fatalf("%d input bytes still charged after the will was cleared", d)
	}
}

// A will's topic must be one the policy lets the connection publish to:
// 403 otherwise.
func TestWillNeedsPublish(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "allow uid 4321 publish,subscribe mine.>"))
	c := dialAs(t, path, 4321)
	if st, why := c.setWill(&wire.WillRequest{Topic: "theirs.x"}); st != wire.StatusForbidden || !strings.Contains(why, "denied") {
		t.Fatalf("will answered %q %q; want 403 denied", st, why)
	}
	if st, why := c.setWill(&wire.WillRequest{Topic: "mine.x"}); st != "" {
		t.Fatalf("will answered %q %q; want it set", st, why)
	}
}

// A will its user's input budget has no room for is refused with 429,
// naming the budget; the connection goes on.
func TestWillOverBudget(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Input = connMemory + 4000 })
	c := connectRaw(t, path)
	if st, why := c.setWill(&wire.WillRequest{Topic: "w", Payload: make([]byte, 8000)}); st != wire.StatusNoRoom || !strings.Contains(why, "input bytes budget") {
		t.Fatalf("will answered %q %q; want 429 naming the input budget", st, why)
	}
	if st, why := c.setWill(&wire.WillRequest{Topic: "w", Payload: make([]byte, 100)}); st != "" {
		t.Fatalf("a small will answered %q %q", st, why)
	}
}
