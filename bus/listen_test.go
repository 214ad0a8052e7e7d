package bus

import (
	"testing"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// A stream's listeners are SUBs of exactly its topic in group "listeners":
// anything else under _STREAM. is refused, so no second group can form
// and take a copy of a dial.
func TestListenerShape(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	for _, s := range []struct {
		pattern, group string
		code           wire.Code
		text           string
	}{
		{wire.GroupOnlyPrefix + "chat", "evil", wire.CodeInvalidGroup, `must be in queue group "listeners", not "evil"`},
		{wire.GroupOnlyPrefix + "chat", "", wire.CodeInvalidGroup, `must be in queue group "listeners", not ""`},
		{wire.GroupOnlyPrefix + "*", "listeners", wire.CodeInvalidPattern, "a listener names one stream"},
		{wire.GroupOnlyPrefix + ">", "listeners", wire.CodeInvalidPattern, "a listener names one stream"},
	} {
		c.sub(1, s.pattern, s.group)
		c.expectErr(s.code, s.text)
	}
	c.sub(1, wire.GroupOnlyPrefix+"chat", "listeners")
	c.sync()
}

// Each dial reaches exactly one of a stream's listeners, with its socket,
// and nobody else: not a subscriber to ">", not a group on ">".
func TestDialReachesExactlyOneListener(t *testing.T) {
	_, path := testBroker(t, nil)
	l1, l2 := connectRaw(t, path), connectRaw(t, path)
	for _, l := range []*rawClient{l1, l2} {
		l.sub(7, wire.GroupOnlyPrefix+"chat", "listeners")
		l.sync()
	}
	others := connectRaw(t, path)
	others.sub(1, ">", "")
	others.sub(2, ">", "evil")
	others.sub(3, ">", "listeners")
	others.sync()
	dialer := connectRaw(t, path)
	dialer.sub(1, dialer.inbox(">"), "")
	const n = 20
	for range n {
		sp := socketpairFDs(t)
		dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"chat", dialer.inbox("1"), nil, []byte("password=hunter2"), 1), sp[1])
		unix.Close(sp[1])
		unix.Close(sp[0])
	}
	dialer.sync()
	got := 0
	for _, l := range []*rawClient{l1, l2} {
		for {
			l.send(wire.AppendControl(nil, wire.OpPing, 99, nil))
			f := l.next()
			if f.Op == wire.OpPong {
				break
			}
			if f.NFDs != 1 || f.ID != 7 {
				t.Fatalf("listener got %v with %d fds on %d", f.Op, f.NFDs, f.ID)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("listeners got %d dials; want %d, each exactly once", got, n)
	}
	others.quiet()
}

// Who may listen on and dial a stream name is policy, by name.
func TestListenAndDialArePolicy(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, `
deny  uid %me listen admin
deny  uid %me dial   secret.>
allow uid %me all    >
`))
	c := connectRaw(t, path)
	c.sub(1, wire.GroupOnlyPrefix+"admin", "listeners")
	c.expectErr(wire.CodePermissionDenied, `listening on stream "admin" denied by rule at line 2`)
	c.sub(2, wire.GroupOnlyPrefix+"secret.door", "listeners")
	c.sync() // listening is allowed there; dialing is not
	c.sub(3, c.inbox(">"), "")
	c.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"secret.door", c.inbox("1"), nil, nil, 0))
	c.expectErr(wire.CodePermissionDenied, `dial of stream "secret.door" denied by rule at line 3`)
	c.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"admin", c.inbox("2"), nil, nil, 0))
	f := c.next() // allowed, and nobody listens
	if v, _ := f.Headers.Get(wire.StatusHeader); f.Origin.Conn != 0 || v != wire.StatusNoResponders {
		t.Fatalf("got %q from %d status %q; want no responders", f.Topic, f.Origin.Conn, v)
	}
}

// Accepting a dial is part of listening: a listener the policy lets
// listen answers its dials whatever the reply rules say of _STREAM.
// topics (docs/SECURITY.md, the verbs).
func TestAnsweringADialIsPartOfListening(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "deny uid %me reply >\nallow uid %me all >"))
	listener, dialer := connectRaw(t, path), connectRaw(t, path)
	listener.sub(1, wire.GroupOnlyPrefix+"chat", "listeners")
	listener.sync()
	dialer.sub(1, dialer.inbox(">"), "")
	sp := socketpairFDs(t)
	dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"chat", dialer.inbox("1"), nil, nil, 1), sp[1])
	unix.Close(sp[1])
	unix.Close(sp[0])
	dialer.sync()
	f := listener.next()
	if f.NFDs != 1 || string(f.Reply) != dialer.inbox("1") {
		t.Fatalf("listener got %q with %d fds, reply %q", f.Topic, f.NFDs, f.Reply)
	}
	fds, err := listener.sock.TakeFDs(1)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[0])
	listener.send(wire.AppendPub(nil, dialer.inbox("1"), "", nil, []byte("accepted"), 0))
	listener.sync()
	if f := dialer.next(); string(f.Payload) != "accepted" || f.Origin.Conn != listener.info.ConnID {
		t.Fatalf("dialer got %q from %d; want the listener's answer", f.Payload, f.Origin.Conn)
	}
	// A request on any other topic is a reply the rule denies.
	listener.sub(2, "svc", "")
	listener.sync()
	dialer.send(wire.AppendPub(nil, "svc", dialer.inbox("2"), nil, nil, 0))
	listener.next()
	listener.send(wire.AppendPub(nil, dialer.inbox("2"), "", nil, nil, 0))
	listener.expectErr(wire.CodePermissionDenied, `reply to "`+dialer.inbox("2")+`" denied by rule at line 1`)
	dialer.quiet()
}
