package bus

import (
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// A connection whose HELLO does not say fd_payloads is never sent a MSG
// whose payload is in a memfd: a client written before them would read
// the 8-byte size as the payload. A plain subscription of it loses the
// message and is told at once by a gap notice (not closed, even with
// policy disconnect: it is not behind); a queue group gives it to a
// member that takes it; the RECEIPT counts the loss.
func TestPayloadFDOnlyForClientsThatTakeThem(t *testing.T) {
	srv, path := testBroker(t, nil)
	old := connectHello(t, path, &wire.Hello{Version: wire.Version, Name: "old"})
	old.send(wire.AppendSub(nil, 1, "old.>", "", wire.SubDisconnect))
	old.sub(2, "grp.x", "g")
	old.sync()
	cur := subscriber(t, path, "old.>")
	cur.sub(2, "grp.x", "g")
	cur.sync()
	pub := connectRaw(t, path)
	const content = "a payload in a memfd"
	payload := payloadMemfd(t, content, int64(len(content)), allSeals)

	pub.pubFD(1, "old.a", uint64(len(content)), int(payload.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 1, Dropped: 1}) {
		t.Fatalf("receipt %v; want 1 delivered (the current client), 1 dropped (the old one)", r)
	}
	_, fds := cur.expectPayloadMsg("old.a", uint64(len(content)), 1)
	closeFDs(fds)
	f := old.next()
	lost, _ := f.Headers.Get(wire.DroppedHeader)
	reason, _ := f.Headers.Get(wire.ReasonHeader)
	if f.Op != wire.OpMsg || f.Origin.Conn != 0 || f.ID != 1 || f.NFDs != 0 || lost != "1" || !strings.Contains(reason, "fd_payloads") {
		t.Fatalf("the old client got %v id %d from conn %d, %d fds, Bus-Dropped %q, Bus-Reason %q; want a gap notice for sub 1 naming fd_payloads",
			f.Op, f.ID, f.Origin.Conn, f.NFDs, lost, reason)
	}
	// Still open, and its next inline message comes as usual.
	pub.pub("old.b", "inline")
	if f := old.next(); f.Op != wire.OpMsg || string(f.Payload) != "inline" || f.Flags != 0 {
		t.Fatalf("after the notice the old client got %v %q flags %#x; want the inline MSG", f.Op, f.Payload, f.Flags)
	}
	cur.expectMsg("old.b", "inline")

	// The group picks at random: every one goes to the member that takes it.
	for i := range 8 {
		pub.pubFD(uint32(10+i), "grp.x", uint64(len(content)), int(payload.Fd()))
		if r := pub.expectReceipt(uint32(10 + i)); r != (wire.Receipt{Delivered: 1}) {
			t.Fatalf("group message %d: receipt %v; want 1 delivered", i, r)
		}
		_, fds := cur.expectPayloadMsg("grp.x", uint64(len(content)), 1)
		closeFDs(fds)
	}
	old.sync() // nothing came before its PONG
	if st := srv.Stats(); st.Dropped != 1 {
		t.Fatalf("stats count %d dropped; want 1", st.Dropped)
	}
}

// A request whose payload is in a memfd, whose only subscriber does not
// take those, is answered 503 with why, not 429: waiting would not help.
// Its RECEIPT counts the loss.
func TestPayloadFDRequestNobodyTakes(t *testing.T) {
	_, path := testBroker(t, nil)
	old := connectHello(t, path, &wire.Hello{Version: wire.Version, Name: "old"})
	old.sub(1, "svc", "")
	old.sync()
	req := connectRaw(t, path)
	req.sub(1, req.inbox(">"), "")
	req.sync()
	payload := payloadMemfd(t, "ask", 3, allSeals)
	req.requestFD(7, 0, "svc", req.inbox("r"), 3, int(payload.Fd()))
	req.expectStatus(req.inbox("r"), wire.StatusNoResponders, "fd_payloads")
	if r := req.expectReceipt(7); r != (wire.Receipt{Dropped: 1}) {
		t.Fatalf("receipt %v; want 1 dropped", r)
	}
	old.next() // its gap notice
}
