package bus

import (
	"testing"

	"github.com/busd/busd/bus/wire"
)

// A name's topics reach only its owner: a retained value there would be
// handed to any retained-first subscription (">" included) and listed by
// $SYS.req.retained, whoever owns the name. So a retained PUB to a
// "_NAME." topic is refused like one to an inbox, and so is a will that
// would be retained there.
func TestRetainedRefusedOnNameTopics(t *testing.T) {
	_, path := testBroker(t, nil)
	owner := nameClient(t, path, "owner")
	owner.requestName("svc", 0, wire.NamePrimaryOwner)
	owner.sub(1, "_NAME.svc.>", "")
	owner.sync()

	owner.retain("_NAME.svc.state", "secret")
	owner.expectErr(wire.CodeRetainRefused, "keep no retained value")
	owner.sync()

	stranger := connectRaw(t, path)
	stranger.subRetained(1, ">", 0)
	stranger.quiet() // no value from the name's topic

	w := connectRaw(t, path)
	if st, why := w.setWill(&wire.WillRequest{Topic: "_NAME.svc.state", Payload: []byte("x"), Retain: true}); st != wire.StatusBadRequest {
		t.Fatalf("retained will on a name's topic answered %q %q; want 400", st, why)
	}
	if st, why := w.setWill(&wire.WillRequest{Topic: "_NAME.svc.state", Payload: []byte("x")}); st != "" {
		t.Fatalf("plain will on a name's topic answered %q %q; want it set", st, why)
	}
}

// A connection that owns a name and leaves a will about it has the will
// published before its name goes to the next in the queue: a watcher sees
// the will, then the owner event, and a successor that publishes its own
// retained state on taking the name is not overwritten by the stale will.
func TestWillBeforeNameHandover(t *testing.T) {
	_, path := testBroker(t, nil)
	w := connectRaw(t, path)
	w.sub(1, "svc.status", "")
	w.sub(2, wire.SysNameOwner+"svc", "")
	w.sync()

	old := connectRaw(t, path)
	if st, why := old.setWill(&wire.WillRequest{Topic: "svc.status", Payload: []byte("offline"), Retain: true}); st != "" {
		t.Fatalf("will refused: %s %s", st, why)
	}
	old.sub(100, old.inbox(">"), "")
	old.requestName("svc", 0, wire.NamePrimaryOwner)
	nextNameEvent(t, w, "svc")
	next := nameClient(t, path, "next")
	next.requestName("svc", 0, wire.NameInQueue)

	old.sock.Close()
	w.expectValue(1, "svc.status", "offline", false)
	if ev := nextNameEvent(t, w, "svc"); connOf(ev.New) != next.info.ConnID {
		t.Fatalf("owner event to conn %d; want %d", connOf(ev.New), next.info.ConnID)
	}
}
