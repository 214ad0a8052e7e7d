package bus

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// connOf returns the broker's side of a raw client's connection.
func (s *Server) connOf(c *rawClient) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		if sc.id == c.info.ConnID {
			return sc
		}
	}
	return nil
}

// watchControl checks, until stop is closed, that the control output the
// broker holds for sc stays within its bound, and sends the first breach.
func watchControl(sc *conn, stop <-chan struct{}) <-chan int {
	breach := make(chan int, 1)
	go func() {
		defer close(breach)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sc.mu.Lock()
			n := sc.ctrlBytes
			sc.mu.Unlock()
			if n > controlLimit+64 {
				breach <- n
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return breach
}

// A client that sends PINGs and never reads its PONGs makes the broker
// stop reading it once a bounded amount of PONGs waits: the broker's
// memory stays flat, and when the client reads it gets every PONG, in
// order.
func TestPingFloodIsBoundedAndAnswered(t *testing.T) {
	const n = 200_000 // 4 MB of PINGs, 4 MB of PONGs
	floodUnread(t, n, func(dst []byte, i int) []byte {
		return wire.AppendControl(dst, wire.OpPing, uint32(i), nil)
	}, func(c *rawClient, i int) {
		if f := c.next(); f.Op != wire.OpPong || f.ID != uint32(i) {
			t.Fatalf("frame %d: %v %d", i, f.Op, f.ID)
		}
	})
}

// floodUnread sends n frames made by appendFrame without reading, until
// the broker stops reading the client because the control frames they
// caused wait; then it reads them, checking each with expect, and checks
// the control output never went past its bound.
func floodUnread(t *testing.T, n int, appendFrame func(dst []byte, i int) []byte, expect func(c *rawClient, i int)) {
	t.Helper()
	srv, path := testBroker(t, nil)
	c := connectRaw(t, path)
	sc := srv.connOf(c)
	stop := make(chan struct{})
	breach := watchControl(sc, stop)
	sent := make(chan error, 1)
	go func() {
		var batch []byte
		for i := range n {
			batch = appendFrame(batch, i)
			if len(batch) >= 64<<10 || i == n-1 {
				if _, err := c.sock.Write(batch); err != nil {
					sent <- err
					return
				}
				batch = batch[:0]
			}
		}
		sent <- nil
	}()
	// The client writes until the broker stops reading it: give it the
	// time to, then read everything.
	waitFor(t, "the broker to pause the client", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.ctrlBytes > controlLimit
	})
	for i := range n {
		expect(c, i)
	}
	close(stop)
	if n, ok := <-breach; ok {
		t.Fatalf("%d bytes of control frames queued; the bound is %d", n, controlLimit)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// Refused frames each get their ERR, but no faster than the ERR rate
// bound, and what waits is bounded like any control output.
func TestRefusedFrameFloodIsBoundedAndAnswered(t *testing.T) {
	srv, path := testBroker(t, nil)
	c := connectRaw(t, path)
	stop := make(chan struct{})
	breach := watchControl(srv.connOf(c), stop)
	const n = 300
	var batch []byte
	for i := range n {
		batch = wire.AppendControl(batch, wire.OpUnsub, uint32(i+1), nil)
	}
	c.send(batch)
	for i := range n {
		e := c.expectErr(wire.CodeUnknownSub, "no subscription")
		if e.Seq != uint64(i+2) {
			t.Fatalf("ERR %d is about frame %d", i, e.Seq)
		}
	}
	c.sync()
	close(stop)
	if n, ok := <-breach; ok {
		t.Fatalf("%d bytes of control frames queued", n)
	}
}

// A frame whose first bytes came and whose rest never does ends the
// connection after FrameTimeout, with an ERR that says so.
func TestHalfAFrameTimesOut(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.FrameTimeout = 100 * time.Millisecond })
	c := connectRaw(t, path)
	frame := wire.AppendPub(nil, "a", "", nil, make([]byte, 1000), 0)
	c.send(frame[:30])
	about(t, c.expectErr(wire.CodeTimeout, "did not arrive whole within 100ms"), 0, 0)
	c.expectClosed()
	stillServes(t, path)
}

// Descriptors sent ahead of any frame that claims them are closed after
// FrameTimeout, with the connection.
func TestUnclaimedDescriptorsTimeOut(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.FrameTimeout = 100 * time.Millisecond })
	base := countFDs(t)
	c := connectRaw(t, path)
	f := memfdWith(t, "x")
	c.send(wire.AppendControl(nil, wire.OpPing, 1, nil), int(f.Fd()), int(f.Fd()), int(f.Fd()))
	f.Close()
	if p := c.next(); p.Op != wire.OpPong {
		t.Fatalf("got %v", p.Op)
	}
	about(t, c.expectErr(wire.CodeTimeout, "3 descriptors were sent and no frame claimed them"), 0, 0)
	c.expectClosed()
	c.sock.Close()
	waitFDs(t, base)
}

// A large frame is read in pieces, each charged before it is allocated:
// announcing 64 MiB and sending 1 KiB costs the broker about a piece.
func TestAnnouncedFrameCostsWhatArrives(t *testing.T) {
	srv, path := testBroker(t, nil)
	c := connectRaw(t, path)
	// An idle connection holds its fixed charge alone: the output grant
	// its handshake's reply took is given back once that is written.
	base := int64(connMemory)
	waitFor(t, "the connection to be idle", func() bool { return srv.Stats().Memory == base })
	frame := wire.AppendPub(nil, "big", "", nil, nil, 0)
	h, _ := wire.DecodeHeader(frame, &wire.DefaultLimits)
	h.PayloadLen = 64 << 20
	head := wire.AppendFrameHeader(nil, &h)
	c.send(append(append(head, "big"...), make([]byte, 1024)...))
	waitFor(t, "the first piece to be charged", func() bool { return srv.Stats().Memory > base })
	if got := srv.Stats().Memory - base; got > largePiece {
		t.Fatalf("the broker charged %d bytes for a frame it has 1 KiB of", got)
	}
	c.sock.Close()
	waitFor(t, "everything to be given back", func() bool { return srv.Stats().Memory == 0 })
}

// A client that sends more descriptors at once than its user's budget
// allows gets none of them installed beyond the budget, and an ERR naming
// it.
func TestDescriptorsBeyondTheBudgetAreRefused(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.User.InputFDs = int(c.Limits.MaxFDs) })
	base := countFDs(t)
	c := connectRaw(t, path)
	f := memfdWith(t, "x")
	defer f.Close()
	fds := make([]int, 100)
	for i := range fds {
		fds[i] = int(f.Fd())
	}
	frames := wire.AppendPub(nil, "a", "", nil, nil, 64)
	frames = wire.AppendPub(frames, "a", "", nil, nil, 36)
	c.send(frames, fds...)
	about(t, c.expectErr(wire.CodeBudget, "budget"), 2, 0) // the read of frame 2 brought them
	c.expectClosed()
	c.sock.Close()
	waitFDs(t, base+1) // the memfd is still open
	// The socket is closed before the connection leaves the ledger.
	waitFor(t, "the connection's descriptors to leave the pool", func() bool { return srv.Stats().FDs == 0 })
}

// A client cannot pass its own connection to the broker through the
// broker; other sockets go through.
func TestOwnConnectionCannotBePassed(t *testing.T) {
	_, path := testBroker(t, nil)
	sub := subscriber(t, path, "sock")
	c := connectRaw(t, path)
	own, err := c.sock.File()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	c.pub("sock", "mine", int(own.Fd()))
	c.expectErr(wire.CodeRefusedFD, "connected to this broker")
	pair := socketpairFDs(t)
	c.pub("sock", "a pair", pair[0])
	if f := sub.next(); string(f.Payload) != "a pair" || f.NFDs != 1 {
		t.Fatalf("got %q with %d fds", f.Payload, f.NFDs)
	}
	fds, _ := sub.sock.TakeFDs(1)
	unix.Close(fds[0])
}

// A passed TCP socket whose close blocks (SO_LINGER with data it cannot
// send) is closed off the routing path: with the broker holding the last
// reference and closing it, other clients go on, and Shutdown returns.
func TestLingeringSocketDoesNotBlockTheBus(t *testing.T) {
	srv, path := testBroker(t, nil)
	f := lingeringSocketFile(t)
	holder := subscriber(t, path, "sock") // never reads
	pub := connectRaw(t, path)
	// Fill the holder's socket, so that the message with the socket stays
	// in the broker's queue: the broker's reference is then the last. A
	// little at a time, so that the holder never falls far enough behind
	// to lose messages.
	sc := srv.connOf(holder)
	queued := func() int { sc.mu.Lock(); defer sc.mu.Unlock(); return sc.pending }
	for i := 0; queued() < 64<<10; i++ {
		if i > 10_000 {
			t.Fatal("the holder's socket never filled")
		}
		pub.pub("sock", string(make([]byte, 1024)))
		pub.sync()
	}
	pub.pub("sock", "linger", int(f.Fd()))
	f.Close()
	pub.sync()
	if func() int { sc.mu.Lock(); defer sc.mu.Unlock(); return sc.out.FDs() }() != 1 {
		t.Fatal("the socket is not in the broker's queue for the holder")
	}
	holder.sock.Close() // the broker drops, and closes, the last reference
	closing := func() bool { srv.closer.mu.Lock(); defer srv.closer.mu.Unlock(); return srv.closer.busy == 1 }
	waitFor(t, "the closer to be inside the lingering close", closing)
	stillServes(t, path) // within next's 5 s watchdog, well inside the linger
	if !closing() {
		t.Fatal("the close did not block: this test tests nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx) // returns when ctx ends at the latest, whatever the closer is doing
}

// Closing a connection closes what its client sent and the broker never
// read, and that may block: it must not block the connection's own
// goroutines (nor, through them, Shutdown).
func TestUnreadDescriptorsDoNotBlockTheClose(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.WriteTimeout = time.Second
	})
	f := lingeringSocketFile(t)
	strict := subscriber(t, path, "flood") // never reads
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "flood", 4000, 1024); err != nil {
		t.Fatal(err)
	}
	// Closed as a slow consumer once it has accepted nothing for the
	// write timeout: the broker reads no more from it, but keeps the
	// socket open while the ERR waits to be read. What the client sends
	// now stays in the socket.
	waitFor(t, "the broker to give up on the subscriber", func() bool { return srv.Stats().SlowConsumers == 1 })
	strict.send(wire.AppendControl(nil, wire.OpPing, 1, nil), int(f.Fd()))
	f.Close()
	strict.sock.Close() // the broker's end now holds the last reference
	closing := func() bool { srv.closer.mu.Lock(); defer srv.closer.mu.Unlock(); return srv.closer.busy > 0 }
	waitFor(t, "the connection's close to block", closing)
	waitFor(t, "its goroutines to finish", func() bool { return srv.Stats().Conns == 1 })
	stillServes(t, path)
	if !closing() {
		t.Fatal("the close did not block: this test tests nothing")
	}
}

// Descriptors a connection leaves unclaimed when it closes give their
// place in the user's budget back: a user that did so more often than its
// budget allows could once pass no descriptor ever again.
func TestUnclaimedDescriptorsGiveTheirBudgetBack(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.User.InputFDs = 300 })
	f := memfdWith(t, "x")
	defer f.Close()
	fds := make([]int, 253)
	for i := range fds {
		fds[i] = int(f.Fd())
	}
	for range 5 { // 1265 descriptors through a budget of 300
		c := connectRaw(t, path)
		c.send(wire.AppendControl(nil, wire.OpPing, 1, nil), fds...)
		if p := c.next(); p.Op != wire.OpPong {
			t.Fatalf("got %v", p.Op)
		}
		c.sock.Close()
		waitFor(t, "the connection and its descriptors to be gone", func() bool {
			st := srv.Stats()
			return st.Conns == 0 && st.FDs == 0
		})
	}
	sub := subscriber(t, path, "x")
	sub.pub("x", "still passes", int(f.Fd()))
	if m := sub.next(); m.Op != wire.OpMsg || m.NFDs != 1 {
		t.Fatalf("got %v with %d fds", m.Op, m.NFDs)
	}
	got, _ := sub.sock.TakeFDs(1)
	unix.Close(got[0])
}

// lingeringSocketFile is a TCP socket whose close blocks for 60 s: longer
// than next's watchdog, and than the waits of a test on a loaded machine
// that checks the close still blocks after them. Its peer's cleanup, which
// runs before the broker's, ends the linger.
func lingeringSocketFile(t *testing.T) *os.File {
	f, _ := bustest.LingeringSocket(t, 60)
	return f
}
