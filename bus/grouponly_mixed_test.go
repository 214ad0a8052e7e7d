package bus

// Group-only routing with queue groups that mix exact
// and wildcard members, its counters, and the descriptors of a request
// nobody takes.

import (
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// socketpairFDs returns a connected pair; the caller closes both ends.
func socketpairFDs(t *testing.T) [2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return [2]int{fds[0], fds[1]}
}

// A group mixing one exact member with wildcard ones: the exact member gets
// every request, with its descriptor; the wildcard members, and a second
// group of wildcard members only, get none; the counters count each
// request once as published and once as delivered.
func TestGroupOnlyMixedGroup(t *testing.T) {
	srv, path := testBroker(t, nil)
	exact := connectRaw(t, path)
	exact.sub(7, wire.GroupOnlyPrefix+"web", "listeners")
	exact.sync()
	var wild []*rawClient
	for _, p := range []string{">", "*.web", "*.>"} {
		for _, g := range []string{"listeners", "others"} {
			c := connectRaw(t, path)
			c.sub(1, p, g)
			c.sync()
			wild = append(wild, c)
		}
	}
	dialer := connectRaw(t, path)
	before := srv.Stats()
	const n = 30
	for range n {
		sp := socketpairFDs(t)
		dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"web", "", nil, nil, 1), sp[1])
		unix.Close(sp[1])
		unix.Close(sp[0])
	}
	dialer.sync()
	for i := range n {
		f := exact.next()
		if f.ID != 7 || f.NFDs != 1 {
			t.Fatalf("request %d: id %d, %d fds", i, f.ID, f.NFDs)
		}
	}
	for i, c := range wild {
		if f, err := c.tryNext(100 * time.Millisecond); err == nil {
			t.Errorf("wildcard member %d got %v %q", i, f.Op, f.Topic)
		}
	}
	after := srv.Stats()
	if d := after.Published - before.Published; d != n {
		t.Errorf("Published went up by %d; want %d", d, n)
	}
	if d := after.Delivered - before.Delivered; d != n {
		t.Errorf("Delivered went up by %d; want %d", d, n)
	}
}

// A request with a descriptor that only wildcard members could have taken:
// the requester hears no responders, and the broker closes its copy of the
// descriptor (the peer sees EOF, and the process has no more fds open
// than before).
func TestGroupOnlyNobodyReleasesFDs(t *testing.T) {
	_, path := testBroker(t, nil)
	workers := connectRaw(t, path)
	workers.sub(1, ">", "listeners")
	workers.sync()
	dialer := connectRaw(t, path)
	dialer.sub(1, dialer.inbox(">"), "")
	dialer.sync()
	base := countFDs(t)
	for range 20 {
		sp := socketpairFDs(t)
		dialer.send(wire.AppendPub(nil, wire.GroupOnlyPrefix+"nobody", dialer.inbox("1"), nil, nil, 1), sp[1])
		unix.Close(sp[1])
		f := dialer.next()
		if v, _ := f.Headers.Get(wire.StatusHeader); v != wire.StatusNoResponders {
			t.Fatalf("got status %q; want no responders", v)
		}
		tv := unix.Timeval{Sec: 2}
		unix.SetsockoptTimeval(sp[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, err := unix.Read(sp[0], make([]byte, 1))
		unix.Close(sp[0])
		if n != 0 || err != nil {
			t.Fatalf("the dialer's end: read %d, %v; want EOF (the broker closed its copy)", n, err)
		}
	}
	if got := countFDs(t); got > base {
		t.Errorf("%d descriptors open after 20 refused requests; %d before", got, base)
	}
}
