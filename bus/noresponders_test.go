package bus

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// expectNoResponders reads one no-responders answer and checks it is
// exactly what PROTOCOL.md specifies: topic the reply topic, no reply, one
// header Bus-Status: status, no payload, no descriptors, origin the broker
// (conn 0, this process, which runs it). It returns the subscription id.
func expectNoResponders(t *testing.T, c *rawClient, reply, status string) uint32 {
	t.Helper()
	f := c.next()
	want := wire.Origin{Conn: 0, PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	switch {
	case f.Op != wire.OpMsg || string(f.Topic) != reply || len(f.Reply) != 0:
		t.Fatalf("got %v on %q reply %q; want a MSG on %q without reply", f.Op, f.Topic, f.Reply, reply)
	case !bytes.Equal(f.Headers, wire.AppendField(nil, wire.StatusHeader, status)):
		t.Fatalf("headers %q; want exactly %s: %s", f.Headers, wire.StatusHeader, status)
	case len(f.Payload) != 0 || f.NFDs != 0:
		t.Fatalf("payload %q, %d fds; want neither", f.Payload, f.NFDs)
	case f.Origin != want:
		t.Fatalf("origin %+v; want the broker's %+v", f.Origin, want)
	}
	return f.ID
}

// Every subscription of the requester that matches the reply topic gets
// the no-responders answer, in a queue group or not; other connections'
// subscriptions get nothing.
func TestNoRespondersReachEveryMatchingSubscriptionOfTheRequester(t *testing.T) {
	_, path := testBroker(t, nil)
	other := connectRaw(t, path)
	other.sub(1, "_INBOX.*.>", "inbox")
	other.sub(2, "_INBOX.>", "")
	other.sync()
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.sub(2, c.inbox("*"), "inbox")
	c.sub(3, "_INBOX.>", "other")
	c.sub(4, c.inbox("x.>"), "inbox") // does not match the reply topic
	c.send(wire.AppendPub(nil, "nobody.home", c.inbox("1"), nil, []byte("hello?"), 0))
	var ids []uint32
	for range 3 {
		ids = append(ids, expectNoResponders(t, c, c.inbox("1"), wire.StatusNoResponders))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint32{1, 2, 3}) {
		t.Fatalf("subscriptions %v got the answer; want 1, 2 and 3, once each", ids)
	}
	c.sync() // nothing more came before the PONG
	other.sync()
}

// A requester whose only inbox is a queue group member is answered too,
// instead of waiting out its timeout.
func TestNoRespondersReachAGroupInbox(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.sub(9, c.inbox("*"), "replies")
	c.send(wire.AppendPub(nil, "nobody.home", c.inbox("7"), nil, nil, 0))
	if id := expectNoResponders(t, c, c.inbox("7"), wire.StatusNoResponders); id != 9 {
		t.Fatalf("the answer went to subscription %d; want 9", id)
	}
	c.sync()
}

// A large request (read in pieces) nobody serves is answered with its own
// reply topic, which is in its first piece: the answer is made before the
// router lets go of the pieces, while another connection publishing large
// frames reads into pieces of its own.
func TestNoRespondersToALargeRequest(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.sync()
	other := connectRaw(t, path)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		big := wire.AppendPub(nil, "nobody.else", "", nil, bytes.Repeat([]byte{'x'}, 4*wire.ChunkSize), 0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := other.sock.Write(big); err != nil {
				return
			}
		}
	}()
	payload := bytes.Repeat([]byte{'r'}, 4*wire.ChunkSize)
	for i := range 20 {
		reply := c.inbox(fmt.Sprint("req", i))
		c.send(wire.AppendPub(nil, "nobody.home", reply, nil, payload, 0))
		expectNoResponders(t, c, reply, wire.StatusNoResponders)
	}
	close(stop)
	other.sock.Close()
	<-done
}
