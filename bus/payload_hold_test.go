package bus

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

const gib = 1 << 30

// stopSubscriber makes the broker's queue for sub, a subscriber to topic
// that does not read, hold whatever is routed to it next: it shrinks the
// send buffer of the broker's socket for sub (the kernel's minimum is a
// few KiB; the broker sets megabytes), and pub publishes more on topic
// than that takes (as much again and 256 KiB), but less than lag_bytes,
// so that sub still takes messages.
func stopSubscriber(t *testing.T, srv *Server, sub, pub *rawClient, topic string) {
	t.Helper()
	sc := srv.connOf(sub)
	f, err := sc.sock.File() // a copy of the same socket
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10)
	sndbuf, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	const piece = 64 << 10
	n := (sndbuf + 256<<10) / piece
	if n*piece >= paceMark {
		t.Fatalf("the socket's send buffer is %d bytes after shrinking it; want it far below lag_bytes", sndbuf)
	}
	for range n {
		pub.send(wire.AppendPub(nil, topic, "", nil, make([]byte, piece), 0))
	}
	pub.sync()
}

// pendingFDs returns the descriptors the broker has queued for c.
func (s *Server) pendingFDs(c *rawClient) int {
	sc := s.connOf(c)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.pendingFDs
}

// readUntilPayload reads c's frames up to the next MSG whose payload is in
// a descriptor, and returns that descriptor (its own ones closed).
func readUntilPayload(t *testing.T, c *rawClient) int {
	t.Helper()
	for {
		f := c.next()
		if f.Op != wire.OpMsg {
			t.Fatalf("got %v; want MSGs", f.Op)
		}
		if f.Flags&wire.MsgPayloadFD == 0 {
			continue
		}
		fds, err := c.sock.TakeFDs(int(f.NFDs))
		if err != nil {
			t.Fatal(err)
		}
		closeFDs(fds[1:])
		return fds[0]
	}
}

// A payload queued for a subscriber that does not read is charged to the
// subscriber's uid (UserBudget.FDPayload) while its queue holds it; here
// that is the publisher's own uid, whose copy takes the publisher's
// charge over (charged once, not twice). A PUB that would take the uid
// over its budget waits for room, up to FrameTimeout, then is refused
// with bad payload naming the budget. Once the subscriber goes, the
// charge is given back, and the next payload goes through. (A receiver
// of another uid pays for its copies itself, and never makes the
// publisher wait: TestPayloadFDSlowReceiverOfAnotherUIDPaysForItsCopies.)
func TestPayloadFDChargedWhileHeld(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload, c.User.FDPayload = gib, gib
		c.FrameTimeout = c.FrameTimeout / 20 // how long the refused PUB waits: nothing gives it room
		c.WriteTimeout = time.Minute         // the stopped subscriber is kept however slow the machine
	})
	base, goroutines := countFDs(t), runtime.NumGoroutine()
	stopped := subscriber(t, path, "big")
	reader := connectRaw(t, path)
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, stopped, pub, "big")
	payload := payloadMemfd(t, "", gib, allSeals) // sparse: no memory
	pub.pubFD(1, "big", gib, int(payload.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("receipt %v; want 1 delivered", r)
	}
	if n := srv.pendingFDs(stopped); n != 1 {
		t.Fatalf("the stopped subscriber's queue holds %d descriptors; want the payload's", n)
	}
	if n := srv.heldPayload(); n != gib {
		t.Fatalf("%d payload bytes charged; want %d", n, gib)
	}
	small := payloadMemfd(t, "x", 1, allSeals)
	pub.pubFD(2, "big", 1, int(small.Fd()))
	pub.expectErr(wire.CodeBadPayload, "held payload bytes budget is 1073741824; 1073741824 in use, 1 more asked for")
	if r := pub.expectReceipt(2); r != (wire.Receipt{}) {
		t.Fatalf("receipt %v; want 0 and 0", r)
	}
	if st := srv.Stats(); st.PayloadWaits != 1 || st.BadPayloads != 1 {
		t.Fatalf("%d waits, %d refusals; want 1 and 1", st.PayloadWaits, st.BadPayloads)
	}
	stopped.sock.Close()
	waitFor(t, "the held payload to be given back", func() bool { return srv.heldPayload() == 0 })
	reader.sub(1, "big", "")
	reader.sync()
	pub.pubFD(3, "big", gib, int(payload.Fd()))
	if r := pub.expectReceipt(3); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("receipt %v; want 1 delivered", r)
	}
	unix.Close(readUntilPayload(t, reader))
	waitFor(t, "the payload to be given back", func() bool { return srv.heldPayload() == 0 })
	payload.Close()
	small.Close()
	reader.sock.Close()
	pub.sock.Close()
	waitFDs(t, base)
	waitGoroutines(t, goroutines)
}

// A publisher whose uid's held payloads fill its budget (here, copies
// queued for a subscriber of its own uid) is paced, not refused, when the
// receivers holding them read on: its PUB waits until a copy of an
// earlier payload has been written.
func TestPayloadFDPublisherWaitsForItsBudget(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload, c.User.FDPayload = gib, gib
		c.FrameTimeout = time.Minute     // the publisher waits that long for room, however slow the machine
		c.WriteTimeout = 2 * time.Minute // and the stopped subscriber is kept
	})
	stopped := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, stopped, pub, "big")
	first := payloadMemfd(t, "", gib, allSeals)
	second := payloadMemfd(t, "", gib, allSeals)
	pub.pubFD(1, "big", gib, int(first.Fd()))
	pub.pubFD(2, "big", gib, int(second.Fd()))
	waitFor(t, "the publisher to wait for its budget", func() bool { return srv.Stats().PayloadWaits == 1 })
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("receipt %v; want 1 delivered", r)
	}
	for i, want := range []*os.File{first, second} {
		fd := readUntilPayload(t, stopped)
		if inode(t, fd) != inode(t, int(want.Fd())) {
			t.Fatalf("payload %d is another file", i+1)
		}
		unix.Close(fd)
	}
	if r := pub.expectReceipt(2); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("receipt %v; want 1 delivered, after the wait", r)
	}
	waitFor(t, "the payloads to be given back", func() bool { return srv.heldPayload() == 0 })
}

// A retained PUB and a broker request keep their refusals with a payload
// in a memfd: retained values hold no descriptors, broker requests take
// none. Either way nothing is delivered and nothing stays charged.
func TestPayloadFDRetainedAndBrokerRequestRefused(t *testing.T) {
	srv, path := testBroker(t, nil)
	sub := subscriber(t, path, "state")
	pub := connectRaw(t, path)
	payload := payloadMemfd(t, "on", 2, allSeals)
	base := srv.Stats().FDs
	pub.requestFD(1, wire.PubRetain, "state", "", 2, int(payload.Fd()))
	pub.expectErr(wire.CodeRetainRefused, "carries no descriptors")
	if r := pub.expectReceipt(1); r != (wire.Receipt{}) {
		t.Fatalf("receipt %v; want 0 and 0", r)
	}
	pub.requestFD(2, 0, wire.SysReqPrefix+"info", pub.inbox("r"), 2, int(payload.Fd()))
	pub.expectErr(wire.CodeReservedTopic, "carries no descriptors")
	if r := pub.expectReceipt(2); r != (wire.Receipt{}) {
		t.Fatalf("receipt %v; want 0 and 0", r)
	}
	sub.sync() // nothing was delivered before the PONG
	waitFor(t, "the refused descriptors to be closed", func() bool { return srv.Stats().FDs == base })
	if n := srv.heldPayload(); n != 0 {
		t.Fatalf("%d payload bytes still charged", n)
	}
	late := connectRaw(t, path)
	late.send(wire.AppendSub(nil, 1, "state", "", wire.SubRetained))
	late.sync() // no retained value before the PONG
}

// A monitor's copy of a message whose payload is in a memfd carries the
// payload (the same file, flag kept) and none of the message's own
// descriptors, which Bus-FDs counts.
func TestPayloadFDMonitorGetsOnlyThePayload(t *testing.T) {
	srv, path := testBroker(t, nil)
	base := countFDs(t)
	mon := monitor(t, path, "bulk.>")
	sub := subscriber(t, path, "bulk.>")
	pub := connectRaw(t, path)
	payload := payloadMemfd(t, "watched", 7, allSeals)
	own1, own2 := memfdWith(t, "one"), memfdWith(t, "two")
	pub.pubFD(1, "bulk.x", 7, int(payload.Fd()), int(own1.Fd()), int(own2.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("receipt %v; want 1 (a monitor is no receiver)", r)
	}
	_, fds := sub.expectPayloadMsg("bulk.x", 7, 3)
	closeFDs(fds)
	f, mfds := mon.expectPayloadMsg("bulk.x", 7, 1)
	if got := lastFDs(f.Headers); got != "2" {
		t.Fatalf("the monitor's %s is %q; want 2, the message's own descriptors", wire.FDsHeader, got)
	}
	if inode(t, mfds[0]) != inode(t, int(payload.Fd())) {
		t.Fatal("the monitor got another file")
	}
	if n := mon.sock.QueuedFDs(); n != 0 {
		t.Fatalf("the monitor's socket received %d more descriptors", n)
	}
	closeFDs(mfds)
	waitFor(t, "the payload to be given back", func() bool { return srv.heldPayload() == 0 })
	for _, f := range []*os.File{payload, own1, own2} {
		f.Close()
	}
	for _, c := range []*rawClient{mon, sub, pub} {
		c.sock.Close()
	}
	waitFDs(t, base)
}

// A request with a payload in a memfd held for an activation keeps its
// charge while held, reaches the service with the same file (and a
// monitor with the payload only), and gives the charge back; one whose
// activation fails gives it back too.
func TestPayloadFDHeldForActivation(t *testing.T) {
	act := newFakeActivator("svc", "broken")
	srv, path := testBroker(t, func(c *Config) {
		c.Activator = act
		withPolicy(t, "allow uid %me monitor _NAME.>")(c)
	})
	mon := monitor(t, path, wire.NamePrefix+">")
	p := nameClient(t, path, "p")
	payload := payloadMemfd(t, "", 64<<20, allSeals)
	p.requestFD(0, 0, wire.NamePrefix+"svc.call", p.inbox("r"), 64<<20, int(payload.Fd()))
	waitName(t, act.started, "svc")
	p.sync()
	if n := srv.heldPayload(); n != 64<<20 {
		t.Fatalf("%d payload bytes charged while held; want %d", n, 64<<20)
	}
	svc := nameClient(t, path, "svc")
	svc.sub(1, wire.NamePrefix+"svc.>", "")
	svc.sync()
	body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: "svc"})
	svc.send(wire.AppendPub(nil, wire.SysReqNameRequest, svc.inbox("n"), nil, body, 0))
	_, fds := svc.expectPayloadMsg(wire.NamePrefix+"svc.call", 64<<20, 1)
	if inode(t, fds[0]) != inode(t, int(payload.Fd())) {
		t.Fatal("the service got another file")
	}
	closeFDs(fds)
	svc.nextAnswer(svc.inbox("n"))
	f, mfds := mon.expectPayloadMsg(wire.NamePrefix+"svc.call", 64<<20, 1)
	if lastFDs(f.Headers) != "0" {
		t.Fatalf("the monitor's %s is %q; want 0", wire.FDsHeader, lastFDs(f.Headers))
	}
	closeFDs(mfds)
	waitFor(t, "the delivered payload to be given back", func() bool { return srv.heldPayload() == 0 })

	p.requestFD(0, 0, wire.NamePrefix+"broken", p.inbox("b"), 64<<20, int(payload.Fd()))
	waitName(t, act.started, "broken")
	p.sync()
	if n := srv.heldPayload(); n != 64<<20 {
		t.Fatalf("%d payload bytes charged while held; want %d", n, 64<<20)
	}
	act.fail("broken", errors.New("exit status 1"))
	p.expectStatus(p.inbox("b"), wire.StatusNoResponders, "activation of broken failed")
	waitFor(t, "the failed request's payload to be given back", func() bool { return srv.heldPayload() == 0 })
}

// vmRSS returns this process's resident memory, from /proc/self/status.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// A 1 GiB payload in a memfd, published four times to four subscribers on
// the default configuration, costs the broker (this process: it runs in
// the test) no memory: it never maps or reads it. The memfd is sparse, so
// the test costs none either. Every descriptor is closed after, and the
// broker serves others on.
func TestPayloadFDGiBCostsTheBrokerNothing(t *testing.T) {
	srv, path := testBroker(t, nil)
	base, goroutines := countFDs(t), runtime.NumGoroutine()
	var subs []*rawClient
	for range 4 {
		subs = append(subs, subscriber(t, path, "bulk"))
	}
	pub := connectRaw(t, path)
	payload := payloadMemfd(t, "", gib, allSeals)
	publish := func(id uint32) {
		pub.pubFD(id, "bulk", gib, int(payload.Fd()))
		if r := pub.expectReceipt(id); r != (wire.Receipt{Delivered: 4}) {
			t.Fatalf("receipt %v; want 4 delivered", r)
		}
		for _, s := range subs {
			_, fds := s.expectPayloadMsg("bulk", gib, 1)
			closeFDs(fds)
		}
	}
	publish(1) // what the first one sets up belongs to the baseline
	before := vmRSS(t)
	for i := range 4 {
		publish(uint32(i + 2))
	}
	after := vmRSS(t)
	t.Logf("resident memory %.1f MiB before 4 GiB in memfds to 4 subscribers each, %.1f MiB after", float64(before)/(1<<20), float64(after)/(1<<20))
	if after-before > 8<<20 {
		t.Fatalf("resident memory grew by %d bytes; want less than 8 MiB", after-before)
	}
	waitFor(t, "the payloads to be given back", func() bool { return srv.heldPayload() == 0 })
	if st := srv.Stats(); st.FDPayloads != 5 {
		t.Fatalf("%d payloads routed; want 5", st.FDPayloads)
	}
	payload.Close()
	for _, c := range append(subs, pub) {
		c.sock.Close()
	}
	waitFDs(t, base)
	waitGoroutines(t, goroutines)
	stillServes(t, path)
}

// The size of a PUB read in pieces (a headers section larger than the
// read buffer) is the last 8 bytes of its body, however they are split.
func TestPayloadFDSizeFromPieces(t *testing.T) {
	size := []byte{0, 0, 0, 1, 2, 3, 4, 5}
	want := uint64(0x0102030405)
	for split := range len(size) + 1 {
		f := wire.Frame{Body: [][]byte{append([]byte("topic+headers"), size[:split]...), size[split:]}}
		if got := payloadFDSize(&f); got != want {
			t.Fatalf("split at %d: size %#x; want %#x", split, got, want)
		}
	}
	f := wire.Frame{Body: [][]byte{[]byte("topic+headers"), size[:3], size[3:5], size[5:]}}
	if got := payloadFDSize(&f); got != want {
		t.Fatalf("in three pieces: size %#x; want %#x", got, want)
	}
}

// A PUB whose headers make it larger than the read buffer is read in
// pieces; with its payload in a memfd, its size is read from the last one
// and it is routed like any other.
func TestPayloadFDWithLargeHeaders(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.Limits.MaxHeaders = 256 << 10 })
	sub := subscriber(t, path, "h")
	pub := connectRaw(t, path)
	payload := payloadMemfd(t, "", 3<<20, allSeals)
	big := strings.Repeat("v", 40<<10)
	hdrs := wire.AppendField(wire.AppendField(nil, "A", big), "B", big)
	var n [wire.PayloadFDLen]byte
	n[5] = 0x30 // 3 MiB
	frame := wire.AppendPub(nil, "h", "", hdrs, n[:], 1)
	frame[2] = wire.PubPayloadFD
	pub.send(frame, int(payload.Fd()))
	f, fds := sub.expectPayloadMsg("h", 3<<20, 1)
	if len(f.Headers) != len(hdrs) {
		t.Fatalf("headers of %d bytes; want %d", len(f.Headers), len(hdrs))
	}
	if inode(t, fds[0]) != inode(t, int(payload.Fd())) {
		t.Fatal("another file")
	}
	closeFDs(fds)
	waitFor(t, "the payload to be given back", func() bool { return srv.heldPayload() == 0 })
}

// A subscriber whose policy is disconnect, closed as a slow consumer with
// a payload queued, gives the payload's charge back with its queue; so
// does shutting the broker down with one queued.
func TestPayloadFDGivenBackOnDisconnectAndShutdown(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxPending = 512 << 10
		c.WriteTimeout = time.Minute // only the disconnect policy closes it
	})
	strict := connectRaw(t, path)
	strict.send(wire.AppendSub(nil, 1, "big", "", wire.SubDisconnect))
	strict.sync()
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, strict, pub, "big")
	payload := payloadMemfd(t, "", gib, allSeals)
	pub.pubFD(1, "big", gib, int(payload.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("receipt %v; want 1 delivered", r)
	}
	if n := srv.heldPayload(); n != gib {
		t.Fatalf("%d payload bytes charged; want %d", n, gib)
	}
	pub.send(wire.AppendPub(nil, "big", "", nil, make([]byte, 1<<20), 0)) // no room: disconnect
	waitFor(t, "the slow consumer's payload to be given back", func() bool { return srv.heldPayload() == 0 })
	if st := srv.Stats(); st.SlowConsumers != 1 {
		t.Fatalf("%d slow consumers; want 1", st.SlowConsumers)
	}

	stopped := subscriber(t, path, "big")
	stopSubscriber(t, srv, stopped, pub, "big")
	pub.pubFD(2, "big", gib, int(payload.Fd()))
	pub.expectReceipt(2)
	if n := srv.heldPayload(); n != gib {
		t.Fatalf("%d payload bytes charged; want %d", n, gib)
	}
	strict.sock.Close() // it is gone already; its writer waits for it to read the ERR
	// stopped reads nothing: shutting down gives up on it when ctx ends,
	// and closes what its queue held.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	waitFor(t, "the payload held at shutdown to be given back", func() bool { return srv.heldPayload() == 0 })
}

// A monitor is a passive watcher: its copy never makes the publisher wait
// (docs/PROTOCOL.md section 8). With a payload in a memfd it did: the
// monitor's copy was a view of the publisher's descriptor, so a monitor
// of another uid that stopped reading kept the publisher's uid charged
// for the payload, and the publisher's next payloads waited for its
// budget and were refused, delivered to nobody. The monitor's copy now
// holds a descriptor of its own, charged to the monitor's uid: the
// publisher's uid pays for its PUB while it is routed, and for the copy
// of the reader (its own uid) until it is read, and a monitor whose uid
// has no room loses the copy, told by a gap notice.
func TestPayloadFDStoppedMonitorHoldsItsOwnCharge(t *testing.T) {
	const other = 4321
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload, c.User.FDPayload = gib, gib
		c.FrameTimeout = c.FrameTimeout / 20 // how long a PUB would wait for the publisher's budget
		c.WriteTimeout = time.Minute         // the stopped monitor is kept however slow the machine
		withPolicy(t, "allow uid 4321 subscribe,monitor big")(c)
	})
	base := countFDs(t)
	mon := dialAsHello(t, path, other, &wire.Hello{Version: wire.Version, Name: "monitor", FDPayloads: true})
	mon.send(wire.AppendSub(nil, 1, "big", "", wire.SubMonitor))
	mon.sync()
	reader := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, mon, pub, "big")
	payload := payloadMemfd(t, "", gib, allSeals) // sparse: no memory
	for id := uint32(1); id <= 2; id++ {
		pub.pubFD(id, "big", gib, int(payload.Fd()))
		if r := pub.expectReceipt(id); r != (wire.Receipt{Delivered: 1}) {
			t.Fatalf("PUB %d: receipt %v; want 1 delivered (the reader)", id, r)
		}
		unix.Close(readUntilPayload(t, reader))
		// The reader's copy closed, the publisher holds nothing; the
		// monitor's uid holds the first payload, and had no room for the
		// second.
		waitFor(t, "the reader's copy to be given back", func() bool { return srv.heldPayload() == gib })
	}
	if st := srv.Stats(); st.PayloadWaits != 0 || st.BadPayloads != 0 {
		t.Fatalf("%d waits, %d refusals; want none: the monitor's copy is not the publisher's", st.PayloadWaits, st.BadPayloads)
	}
	if n := srv.pendingFDs(mon); n != 1 {
		t.Fatalf("the stopped monitor's queue holds %d descriptors; want 1, the first payload", n)
	}
	fd := readUntilPayload(t, mon)
	if inode(t, fd) != inode(t, int(payload.Fd())) {
		t.Fatal("the monitor got another file")
	}
	unix.Close(fd)
	for {
		f := mon.next()
		if f.Op != wire.OpMsg || f.Flags&wire.MsgPayloadFD != 0 {
			t.Fatalf("monitor got %v (flags %#x); want MSGs and the gap notice for the second payload", f.Op, f.Flags)
		}
		if f.Origin.Conn != 0 {
			continue
		}
		if n, _ := f.Headers.Get(wire.DroppedHeader); string(n) != "1" {
			t.Fatalf("gap notice %s %q; want 1", wire.DroppedHeader, n)
		}
		if why, _ := f.Headers.Get(wire.ReasonHeader); !strings.Contains(string(why), "held payload") {
			t.Fatalf("gap notice reason %q; want the held payload budget named", why)
		}
		break
	}
	waitFor(t, "the monitor's payload to be given back", func() bool { return srv.heldPayload() == 0 })
	payload.Close()
	for _, c := range []*rawClient{mon, reader, pub} {
		c.sock.Close()
	}
	waitFDs(t, base)
}

// otherUID is the uid slow receivers of another user connect as.
const otherUID = 4321

// readPastMsgs reads c's frames, closing the descriptors of MSGs that
// carry some, up to the first that is not a MSG, or is a gap notice (a
// MSG from the broker), which it returns; payloads counts the MSGs whose
// payload was in a descriptor.
func readPastMsgs(t *testing.T, c *rawClient) (f wire.Frame, payloads int) {
	t.Helper()
	for {
		f = c.next()
		if f.Op != wire.OpMsg || f.Origin.Conn == 0 {
			return f, payloads
		}
		if f.NFDs > 0 {
			fds, err := c.sock.TakeFDs(int(f.NFDs))
			if err != nil {
				t.Fatal(err)
			}
			closeFDs(fds)
		}
		if f.Flags&wire.MsgPayloadFD != 0 {
			payloads++
		}
	}
}

// A receiver's copy of a payload in a memfd is charged to the receiver's
// uid, not the publisher's. It was the publisher's until the broker
// closed its last copy: a subscriber of another uid that did not read
// held the publisher's payloads, and the publisher's next PUBs waited
// FrameTimeout for its budget and were refused (bad payload), delivered
// to nobody: one frozen receiver starved a publisher. Now the stopped
// subscriber fills its own uid's budget, then loses the payloads it has
// no room for, told by a gap notice naming that budget, while the
// publisher never waits and a subscriber that reads gets every one.
func TestPayloadFDSlowReceiverOfAnotherUIDPaysForItsCopies(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload, c.User.FDPayload = gib, 2*gib
		c.FrameTimeout = time.Minute // a publisher that waited would show in PayloadWaits
		c.WriteTimeout = time.Minute // the stopped subscriber is kept however slow the machine
		withPolicy(t, "allow uid 4321 subscribe big")(c)
	})
	base, goroutines := countFDs(t), runtime.NumGoroutine()
	slow := dialAsHello(t, path, otherUID, &wire.Hello{Version: wire.Version, Name: "slow", FDPayloads: true})
	slow.sub(1, "big", "")
	slow.sync()
	fast := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, slow, pub, "big")
	payload := payloadMemfd(t, "", gib, allSeals) // sparse: no memory
	const pubs = 5
	for id := uint32(1); id <= pubs; id++ {
		pub.pubFD(id, "big", gib, int(payload.Fd()))
		want := wire.Receipt{Delivered: 2}
		if id > 2 { // slow's uid holds 2 GiB, its budget
			want = wire.Receipt{Delivered: 1, Dropped: 1}
		}
		if r := pub.expectReceipt(id); r != want {
			t.Fatalf("PUB %d: receipt %v; want %v", id, r, want)
		}
		fd := readUntilPayload(t, fast)
		if inode(t, fd) != inode(t, int(payload.Fd())) {
			t.Fatalf("PUB %d: the fast subscriber got another file", id)
		}
		unix.Close(fd)
		// Only slow's copies stay charged: to its uid, at most its budget.
		want64 := int64(min(id, 2)) * gib
		waitFor(t, "the fast subscriber's copy to be given back", func() bool { return srv.heldPayload() == want64 })
	}
	if st := srv.Stats(); st.PayloadWaits != 0 || st.BadPayloads != 0 {
		t.Fatalf("%d waits, %d refusals; want none: slow's copies are not the publisher's", st.PayloadWaits, st.BadPayloads)
	}
	if n := srv.pendingFDs(slow); n != 2 {
		t.Fatalf("the stopped subscriber's queue holds %d descriptors; want 2 payloads", n)
	}
	f, got := readPastMsgs(t, slow)
	if got != 2 || f.Op != wire.OpMsg {
		t.Fatalf("slow got %d payloads then %v; want 2, then its gap notice", got, f.Op)
	}
	if d, _ := f.Headers.Get(wire.DroppedHeader); string(d) != strconv.Itoa(pubs-2) {
		t.Fatalf("gap notice %s %q; want %d", wire.DroppedHeader, d, pubs-2)
	}
	wantWhy := "uid 4321's held payload budget of 2147483648 bytes had no room for this copy"
	if why, _ := f.Headers.Get(wire.ReasonHeader); !strings.Contains(string(why), wantWhy) {
		t.Fatalf("gap notice reason %q; want it to contain %q", why, wantWhy)
	}
	waitFor(t, "slow's copies to be given back", func() bool { return srv.heldPayload() == 0 })
	payload.Close()
	for _, c := range []*rawClient{slow, fast, pub} {
		c.sock.Close()
	}
	waitFor(t, "the connections to close", func() bool { return srv.Stats().Conns == 0 })
	if n := srv.heldPayload(); n != 0 {
		t.Fatalf("%d payload bytes charged with every connection closed; want 0", n)
	}
	waitFDs(t, base)
	waitGoroutines(t, goroutines)
}

// A stopped subscriber of another uid whose policy is disconnect, with no
// room in its uid's held payload budget for a copy, is closed as a slow
// consumer naming that budget, at once; the publisher does not wait, the
// reading subscriber gets the payload, and every charge comes back.
func TestPayloadFDSlowReceiverOverItsBudgetDisconnected(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload, c.User.FDPayload = gib, gib
		c.FrameTimeout = time.Minute
		c.WriteTimeout = time.Minute // only the disconnect policy closes it
		withPolicy(t, "allow uid 4321 subscribe big")(c)
	})
	base := countFDs(t)
	strict := dialAsHello(t, path, otherUID, &wire.Hello{Version: wire.Version, Name: "strict", FDPayloads: true})
	strict.send(wire.AppendSub(nil, 1, "big", "", wire.SubDisconnect))
	strict.sync()
	fast := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, strict, pub, "big")
	payload := payloadMemfd(t, "", gib, allSeals)
	pub.pubFD(1, "big", gib, int(payload.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 2}) {
		t.Fatalf("PUB 1: receipt %v; want 2 delivered", r)
	}
	unix.Close(readUntilPayload(t, fast))
	waitFor(t, "the fast subscriber's copy to be given back", func() bool { return srv.heldPayload() == gib })
	pub.pubFD(2, "big", gib, int(payload.Fd()))
	if r := pub.expectReceipt(2); r != (wire.Receipt{Delivered: 1, Dropped: 1}) {
		t.Fatalf("PUB 2: receipt %v; want 1 delivered, 1 dropped", r)
	}
	unix.Close(readUntilPayload(t, fast))
	f, _ := readPastMsgs(t, strict)
	var e wire.Error
	if f.Op != wire.OpErr || wire.DecodeBody(f.Payload, &e) != nil {
		t.Fatalf("strict got %v; want the slow consumer ERR", f.Op)
	}
	if want := "uid 4321's held payload budget of 1073741824 bytes had no room for this copy"; e.Code != wire.CodeSlowConsumer || !strings.Contains(e.Text, want) {
		t.Fatalf("ERR %v %q; want %v containing %q", e.Code, e.Text, wire.CodeSlowConsumer, want)
	}
	if st := srv.Stats(); st.SlowConsumers != 1 || st.PayloadWaits != 0 || st.BadPayloads != 0 {
		t.Fatalf("%d slow consumers, %d waits, %d refusals; want 1, 0, 0", st.SlowConsumers, st.PayloadWaits, st.BadPayloads)
	}
	waitFor(t, "every payload to be given back", func() bool { return srv.heldPayload() == 0 })
	payload.Close()
	for _, c := range []*rawClient{strict, fast, pub} {
		c.sock.Close()
	}
	waitFDs(t, base)
}

// A queue group member whose uid has no room for a copy of a payload in
// a memfd does not lose the group's message while another member has
// room: the group passes it on, as to a member whose queue is full.
func TestPayloadFDQueueGroupPassesOverAMemberWithoutBudget(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDPayload, c.User.FDPayload = gib, gib
		c.FrameTimeout = time.Minute
		c.WriteTimeout = time.Minute
		withPolicy(t, "allow uid 4321 subscribe big")(c)
	})
	slow := dialAsHello(t, path, otherUID, &wire.Hello{Version: wire.Version, Name: "slow", FDPayloads: true})
	slow.sub(1, "big", "workers")
	slow.sync()
	pub := connectRaw(t, path)
	stopSubscriber(t, srv, slow, pub, "big")
	payload := payloadMemfd(t, "", gib, allSeals)
	pub.pubFD(1, "big", gib, int(payload.Fd()))
	if r := pub.expectReceipt(1); r != (wire.Receipt{Delivered: 1}) {
		t.Fatalf("PUB 1: receipt %v; want 1 delivered (slow, the only member)", r)
	}
	waitFor(t, "slow's copy to be charged to its uid alone", func() bool { return srv.heldPayload() == gib })
	fast := connectRaw(t, path)
	fast.sub(1, "big", "workers")
	fast.sync()
	for id := uint32(2); id <= 5; id++ {
		pub.pubFD(id, "big", gib, int(payload.Fd()))
		if r := pub.expectReceipt(id); r != (wire.Receipt{Delivered: 1}) {
			t.Fatalf("PUB %d: receipt %v; want 1 delivered (fast), none dropped", id, r)
		}
		unix.Close(readUntilPayload(t, fast))
		waitFor(t, "fast's copy to be given back", func() bool { return srv.heldPayload() == gib })
	}
	if st := srv.Stats(); st.PayloadWaits != 0 || st.BadPayloads != 0 || st.Dropped != 0 {
		t.Fatalf("%d waits, %d refusals, %d dropped; want none", st.PayloadWaits, st.BadPayloads, st.Dropped)
	}
	if n := srv.pendingFDs(slow); n != 1 {
		t.Fatalf("slow's queue holds %d descriptors; want 1, the first payload", n)
	}
	for _, c := range []*rawClient{slow, fast, pub} {
		c.sock.Close()
	}
	waitFor(t, "every payload to be given back", func() bool { return srv.heldPayload() == 0 })
}
