package bus

import (
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// A queue group whose pattern matches _STREAM.x only through a wildcard
// (">", "*.web") gets no stream request, nor its socket: only the
// listener does. (A wildcard under _STREAM. is refused outright:
// TestListenerShape.)
func TestStreamRequestSkipsWildcardQueueGroup(t *testing.T) {
	for _, pattern := range []string{">", "*.web"} {
		t.Run(pattern, func(t *testing.T) {
			_, path := testBroker(t, nil)
			workers := connectRaw(t, path)
			workers.sub(1, pattern, "workers") // e.g. a pool archiving everything
			workers.sync()
			listener := connectRaw(t, path)
			listener.sub(7, wire.GroupOnlyPrefix+"web", "listeners")
			listener.sync()

			dialer := connectRaw(t, path)
			dialer.sub(1, dialer.inbox(">"), "")
			dialer.sync()
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[0])
			dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"web", dialer.inbox("1"), nil, nil, 1), fds[1])
			unix.Close(fds[1])
			if f := listener.next(); f.ID != 7 {
				t.Fatalf("listener got id %d", f.ID)
			}
			if f, err := workers.tryNext(300 * time.Millisecond); err == nil {
				t.Errorf("queue group %q on %q got a copy of the stream request %q (%d fds); want listeners only",
					"workers", pattern, f.Topic, f.NFDs)
			}
		})
	}
}

// With no listener, a queue group on ">" does not keep the dialer from
// hearing "no responders".
func TestDialToNobodyWithWildcardQueueGroupGetsNoResponders(t *testing.T) {
	_, path := testBroker(t, nil)
	workers := connectRaw(t, path)
	workers.sub(1, ">", "workers")
	workers.sync()
	dialer := connectRaw(t, path)
	dialer.sub(1, dialer.inbox(">"), "")
	dialer.sync()
	dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"nobody", dialer.inbox("1"), nil, nil, 0))
	f, err := dialer.tryNext(500 * time.Millisecond)
	if err != nil {
		t.Fatalf("no answer to a dial nobody listens to (a queue group on \">\" took it): %v", err)
	}
	if v, _ := f.Headers.Get(wire.StatusHeader); v != wire.StatusNoResponders {
		t.Fatalf("got status %q; want no responders", v)
	}
}

// A wildcard subscription in a group that happens to be named "listeners"
// (the group every stream listener joins) takes none of the dials. Before
// the fix it shared in the dials to every stream name, because queue groups
// join by name across patterns.
func TestWildcardMemberOfListenersTakesNoDials(t *testing.T) {
	_, path := testBroker(t, nil)
	thief := connectRaw(t, path)
	thief.sub(1, ">", "listeners")
	thief.sync()
	listener := connectRaw(t, path)
	listener.sub(7, wire.GroupOnlyPrefix+"web", "listeners")
	listener.sync()
	dialer := connectRaw(t, path)
	for range 40 {
		dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"web", dialer.inbox("1"), nil, nil, 0))
	}
	dialer.sync()
	stolen := 0
	for {
		if _, err := thief.tryNext(200 * time.Millisecond); err != nil {
			break
		}
		stolen++
	}
	if stolen > 0 {
		t.Errorf("a subscription to \">\" in group \"listeners\" took %d of 40 dials to \"web\"", stolen)
	}
}
