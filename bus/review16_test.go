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
