package clientlib

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// serveOn runs a broker for the test on path, which another broker may
// have served before it, and returns it.
func serveOn(t *testing.T, path string) *bus.Server { return serveWith(t, path, nil) }

// connEvent is what a Conn's handlers were told, in order.
type connEvent struct {
	kind     string // "disconnected", "reconnected", "closed"
	err      error
	restored Restored
	status   Status // the Conn's status when the handler ran
}

// eventConn starts a broker and connects a Conn to it, with extra options,
// whose handlers send their events to the channel returned.
func eventConn(t *testing.T, extra ...Option) (string, *bus.Server, *Conn, chan connEvent) {
	t.Helper()
	path, srv := startBus(t)
	opts, events := eventOptions()
	return path, srv, connect(t, path, append(opts, extra...)...), events
}

// eventOptions returns handlers that send every event to the channel.
func eventOptions() ([]Option, chan connEvent) {
	ch := make(chan connEvent, 16)
	return []Option{
		WithDisconnectHandler(func(c *Conn, err error) { ch <- connEvent{kind: "disconnected", err: err, status: c.Status()} }),
		WithReconnectHandler(func(c *Conn, r Restored) { ch <- connEvent{kind: "reconnected", restored: r, status: c.Status()} }),
		WithClosedHandler(func(c *Conn) { ch <- connEvent{kind: "closed", status: c.Status()} }),
	}, ch
}

// nextConnEvent waits for the next event, which must be of kind.
func nextConnEvent(t *testing.T, ch chan connEvent, kind string) connEvent {
	t.Helper()
	select {
	case e := <-ch:
		if e.kind != kind {
			t.Fatalf("handler event %q (%v); want %q", e.kind, e.err, kind)
		}
		return e
	case <-testCtx(t).Done():
		t.Fatalf("no %q event", kind)
	}
	panic("unreachable")
}

// A broker shut down and a new one started on the same path: a plain
// subscriber, a queue group member, a stream listener and a replier, all
// on one Conn, keep working, and the handlers say what happened in order.
func TestReconnectRestoresSubscriptions(t *testing.T) {
	path, srv, c, events := eventConn(t)
	plain, err := c.SubscribeSync("news.>")
	if err != nil {
		t.Fatal(err)
	}
	worker, err := c.QueueSubscribeSync("jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := c.Subscribe("math.double", func(m *Msg) { m.Respond(append(m.Data, m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(testCtx(t), "math.double", []byte("a")); err != nil { // opens the inbox
		t.Fatal(err)
	}
	if c.Status() != Connected {
		t.Fatalf("status %v; want connected", c.Status())
	}

	stopBus(t, srv)
	e := nextConnEvent(t, events, "disconnected")
	if !errors.Is(e.err, wire.CodeShuttingDown) {
		t.Fatalf("disconnected with %v; want the broker's shutting down", e.err)
	}
	if got := c.Status(); got != Reconnecting {
		t.Fatalf("status %v with no broker; want reconnecting", got)
	}
	serveOn(t, path)
	e = nextConnEvent(t, events, "reconnected")
	want := Restored{ConnID: c.ConnID(), Subscriptions: 3, Listeners: 1, Inbox: true, Attempts: e.restored.Attempts}
	if e.restored != want || e.restored.Attempts < 1 {
		t.Fatalf("restored %+v; want %+v", e.restored, want)
	}
	if c.Status() != Connected {
		t.Fatalf("status %v after the reconnect; want connected", c.Status())
	}
	if want := fmt.Sprintf("%s%d", InboxPrefix, c.ConnID()); c.Inbox() != want {
		t.Fatalf("inbox %q after the reconnect; want %q", c.Inbox(), want)
	}

	flush(t, c) // the restored SUBs went first: they are in place
	other := connect(t, path)
	if err := other.Publish("news.today", []byte("n")); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish("jobs", []byte("j")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, plain); string(m.Data) != "n" {
		t.Fatalf("subscriber got %q", m.Data)
	}
	if m := next(t, worker); string(m.Data) != "j" {
		t.Fatalf("queue worker got %q", m.Data)
	}
	// Restored in its group, not as a plain subscription: with a second
	// member, each job reaches exactly one of the two.
	mate, err := other.QueueSubscribeSync("jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, other)
	const jobs = 40
	for i := range jobs {
		if err := other.Publish("jobs", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, other) // routed, and what came to other's own member read
	flush(t, c)     // and what came to the restored one
	if got := queued(t, worker) + queued(t, mate); got != jobs {
		t.Fatalf("the two members of group workers got %d of %d jobs; want each once", got, jobs)
	}
	r, err := other.Request(testCtx(t), "math.double", []byte("21"))
	if err != nil || string(r.Data) != "2121" {
		t.Fatalf("request to the replier: %v, %v", err, r)
	}
	sc, err := other.DialStream(testCtx(t), "svc")
	if err != nil {
		t.Fatalf("dialling the listener: %v", err)
	}
	sc.Close()
	acc, err := l.AcceptStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	acc.Close()
	// And its own requests go out under the new inbox.
	if r, err := c.Request(testCtx(t), "math.double", []byte("b")); err != nil || string(r.Data) != "bb" {
		t.Fatalf("request after the reconnect: %v, %v", err, r)
	}
	c.Close()
	if e := nextConnEvent(t, events, "closed"); e.status != Closed {
		t.Fatalf("status %v in the closed handler; want closed", e.status)
	}
}

// Messages published while the connection is down are buffered and go out
// after the subscriptions are restored, so that a subscription of the same
// Conn gets them; past the bound, Publish fails at once with
// ErrReconnectBufferFull and the message is not sent.
func TestPublishesWhileReconnectingAreBuffered(t *testing.T) {
	path, srv := startBus(t)
	opts, events := eventOptions()
	const bound = 200
	c := connect(t, path, append(opts, WithReconnectBuffer(bound))...)
	sub, err := c.SubscribeSync("buf")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	sent := 0
	for ; ; sent++ {
		err := c.Publish("buf", []byte(fmt.Sprint(sent, strings.Repeat(".", 20))))
		if errors.Is(err, ErrReconnectBufferFull) {
			break
		}
		if err != nil {
			t.Fatalf("publish %d while reconnecting: %v", sent, err)
		}
		if sent > bound {
			t.Fatalf("%d publishes of more than 20 bytes fit in a buffer of %d", sent, bound)
		}
	}
	if sent == 0 {
		t.Fatal("nothing fitted in the reconnect buffer")
	}
	serveOn(t, path)
	e := nextConnEvent(t, events, "reconnected")
	if e.restored.Buffered == 0 || e.restored.Buffered > bound {
		t.Fatalf("restored %+v; want the buffer's bytes", e.restored)
	}
	for i := range sent {
		m := next(t, sub)
		if want := fmt.Sprint(i, strings.Repeat(".", 20)); string(m.Data) != want {
			t.Fatalf("message %d is %q; want %q", i, m.Data, want)
		}
	}
	flush(t, c)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if m, err := sub.Next(ctx); err == nil {
		t.Fatalf("a message past the bound arrived: %q", m.Data)
	}
}

// A request in flight when the connection drops fails at once with
// ErrConnectionLost; one made while reconnecting waits for the reconnect.
func TestRequestInFlightFailsWithConnectionLost(t *testing.T) {
	path, srv := startBus(t)
	opts, events := eventOptions()
	replier := connect(t, path)
	got := make(chan struct{}, 1)
	if _, err := replier.Subscribe("slow", func(m *Msg) { got <- struct{}{} }); err != nil { // never answers
		t.Fatal(err)
	}
	flush(t, replier)
	c := connect(t, path, opts...)
	if _, err := c.Subscribe("fast", func(m *Msg) { m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(testCtx(t), "slow", nil)
		errc <- err
	}()
	<-got
	stopBus(t, srv)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("request in flight: %v; want ErrConnectionLost", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("the request in flight is still waiting")
	}
	nextConnEvent(t, events, "disconnected")
	done := make(chan error, 1)
	go func() {
		r, err := c.Request(testCtx(t), "fast", nil)
		if err == nil && string(r.Data) != "ok" {
			err = fmt.Errorf("reply %q", r.Data)
		}
		done <- err
	}()
	serveOn(t, path)
	if err := <-done; err != nil {
		t.Fatalf("request made while reconnecting: %v", err)
	}
}

// WithNoReconnect keeps the old behaviour: the connection ends with the
// broker, and so do its subscriptions.
func TestNoReconnect(t *testing.T) {
	_, srv, c, events := eventConn(t, WithNoReconnect())
	sub, err := c.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	stopBus(t, srv)
	if e := nextConnEvent(t, events, "closed"); e.status != Closed {
		t.Fatalf("status %v; want closed", e.status)
	}
	if _, err := sub.Next(testCtx(t)); !errors.Is(err, wire.CodeShuttingDown) {
		t.Fatalf("Next: %v; want the broker's shutting down", err)
	}
	if err := c.Publish("x", nil); !errors.Is(err, wire.CodeShuttingDown) {
		t.Fatalf("Publish: %v; want the broker's shutting down", err)
	}
}

// Close while reconnecting ends the reconnect at once: the closed handler
// runs once, and no goroutine of the Conn and no descriptor is left.
func TestCloseWhileReconnecting(t *testing.T) {
	fds := openFDs(t) // the broker's are closed by the time they are counted again
	path, srv := startBus(t)
	opts, events := eventOptions()
	c, err := Connect(testCtx(t), append(opts, WithSocket(path))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe("x", func(*Msg) {}); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	c.Close()
	if e := nextConnEvent(t, events, "closed"); e.status != Closed {
		t.Fatalf("status %v; want closed", e.status)
	}
	c.Close()
	waitGone(t, "clientlib.(*Conn)", "clientlib.(*callbacks)", "clientlib.(*Subscription).pump")
	// More would be a leak. Fewer is someone else's: the process's other
	// descriptors (a file another test dropped, which the collector
	// closes; the payload pool's memfds, released when idle) may close
	// meanwhile.
	if n := openFDs(t); n > fds {
		t.Fatalf("%d descriptors open after Close; %d before the broker and the Conn", n, fds)
	}
	select {
	case e := <-events:
		t.Fatalf("event %q after closed", e.kind)
	default:
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitGone waits until no goroutine runs a function whose name contains
// one of names, yielding to let them finish, failing the test if one is
// still there at the test's deadline.
func waitGone(t *testing.T, names ...string) {
	t.Helper()
	ctx := testCtx(t)
	buf := make([]byte, 1<<20)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		found := ""
		for _, n := range names {
			if strings.Contains(stacks, n) {
				found = n
			}
		}
		if found == "" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("a goroutine running %s is left:\n%s", found, stacks)
		}
		runtime.Gosched()
	}
}

// cutSession ends c's session abruptly, as a crashed broker would: its
// socket is shut down under it.
func cutSession(t *testing.T, c *Conn) {
	t.Helper()
	c.mu.Lock()
	f, err := c.sess.sock.File()
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Shutdown(int(f.Fd()), unix.SHUT_RDWR)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// A connection cut without a word from the broker (as when the broker is
// killed, or the socket breaks) is reconnected too, here to the same
// broker, which is still running.
func TestAbruptLossReconnects(t *testing.T) {
	path, _, c, events := eventConn(t)
	sub, err := c.SubscribeSync("abrupt")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	cutSession(t, c)
	e := nextConnEvent(t, events, "disconnected")
	var se *ServerError
	if errors.As(e.err, &se) {
		t.Fatalf("disconnected with the broker's %v; want the socket's end", e.err)
	}
	if e := nextConnEvent(t, events, "reconnected"); e.restored.Subscriptions != 1 {
		t.Fatalf("restored %+v; want 1 subscription", e.restored)
	}
	flush(t, c)
	if err := connect(t, path).Publish("abrupt", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); string(m.Data) != "after" {
		t.Fatalf("got %q", m.Data)
	}
}

// A subscriber the broker drops for falling behind (DisconnectWhenSlow)
// reconnects, and its disconnect handler is told why.
func TestSlowConsumerDisconnectReconnects(t *testing.T) {
	path, _ := startBusWith(t, tinyQueues)
	opts, events := eventOptions()
	sc := connect(t, path, append(opts, WithErrorHandler(func(*Conn, *Subscription, error) {}))...)
	sub, err := sc.SubscribeSync("strict", DisconnectWhenSlow())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sc)
	thaw := freezeReader(t, sc)
	pc := connect(t, path)
	flood(t, pc, "strict", 256)
	thaw()
	if e := nextConnEvent(t, events, "disconnected"); !errors.Is(e.err, ErrSlowConsumer) {
		t.Fatalf("disconnected with %v; want ErrSlowConsumer", e.err)
	}
	if e := nextConnEvent(t, events, "reconnected"); e.restored.Subscriptions != 1 {
		t.Fatalf("restored %+v; want the subscription", e.restored)
	}
	flush(t, sc) // the restored SUB is in place at the broker
	if err := pc.Publish("strict", []byte("again")); err != nil {
		t.Fatal(err)
	}
	for { // what was read before the drop comes first
		if m := next(t, sub); string(m.Data) == "again" {
			break
		}
	}
}

// Which errors a connection is made again after.
func TestReconnectable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{syscall.ECONNRESET, true},
		{fmt.Errorf("%w: stalled", ErrWriteTimeout), true},
		{wire.Errorf(wire.CodeShuttingDown, "bye"), true},
		{wire.Errorf(wire.CodeSlowConsumer, "behind"), true},
		{wire.Errorf(wire.CodeTooManyConns, "full"), true},
		{wire.Errorf(wire.CodeBadFrame, "garbage"), false},
		{wire.Errorf(wire.CodeTooLarge, "big"), false},
		{wire.Errorf(wire.CodeBudget, "over"), false},
		{wire.Errorf(wire.CodePermissionDenied, "not you"), false},
	} {
		if got := reconnectable(tc.err); got != tc.want {
			t.Errorf("reconnectable(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	if redialable(fmt.Errorf("%w: impostor", ErrUntrustedBus)) {
		t.Error("an untrusted bus is dialled again")
	}
	if !redialable(syscall.ENOENT) || !redialable(syscall.ECONNREFUSED) {
		t.Error("a bus not there yet is not dialled again")
	}
}

// A message published with a file while reconnecting keeps its file, and
// the subscriber gets it after the reconnect.
func TestBufferedPublishKeepsItsFiles(t *testing.T) {
	path, srv, c, events := eventConn(t)
	sub, err := c.SubscribeSync("file")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := c.Publish("file", nil, r); err != nil {
		t.Fatal(err)
	}
	r.Close() // the buffer holds its own duplicate
	serveOn(t, path)
	m := next(t, sub)
	defer m.CloseFiles()
	if len(m.Files) != 1 {
		t.Fatalf("%d files; want 1", len(m.Files))
	}
	if _, err := w.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(m.Files[0], buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v from the file received; want the pipe's", buf, err)
	}
}

// Only the connection a request reached may answer it: a reply to a
// request that came on a connection since lost fails with
// ErrConnectionLost rather than go to a broker that would refuse it.
func TestRespondAfterReconnectFails(t *testing.T) {
	path, _, r, events := eventConn(t)
	sub, err := r.SubscribeSync("ask")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, r)
	q := connect(t, path)
	go q.Request(testCtx(t), "ask", nil)
	m := next(t, sub)
	cutSession(t, r)
	nextConnEvent(t, events, "disconnected")
	nextConnEvent(t, events, "reconnected")
	if err := m.Respond(nil); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Respond after the reconnect: %v; want ErrConnectionLost", err)
	}
}

// Publishers, requesters and a subscriber keep going while the broker is
// restarted again and again, and Close then leaves nothing behind.
func TestRepeatedRestartsUnderLoad(t *testing.T) {
	path, srv := startBus(t)
	opts, events := eventOptions()
	c, err := Connect(testCtx(t), append(opts, WithSocket(path), WithErrorHandler(func(*Conn, *Subscription, error) {}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe("load", func(*Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe("echo", func(m *Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 2)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := c.Publish("load", []byte("x")); err != nil && !errors.Is(err, ErrReconnectBufferFull) {
				done <- err
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_, err := c.Request(ctx, "echo", []byte("e"))
			cancel()
			if err != nil && !errors.Is(err, ErrConnectionLost) && !errors.Is(err, context.DeadlineExceeded) &&
				!errors.Is(err, ErrNoResponders) {
				done <- err
				return
			}
		}
	}()
	for range 5 {
		stopBus(t, srv)
		nextConnEvent(t, events, "disconnected")
		srv = serveOn(t, path)
		if e := nextConnEvent(t, events, "reconnected"); e.restored.Subscriptions != 2 {
			t.Fatalf("restored %+v; want 2 subscriptions", e.restored)
		}
	}
	close(stop)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("while restarting: %v", err)
		}
	}
	c.Close()
	nextConnEvent(t, events, "closed")
	waitGone(t, "clientlib.(*Conn)", "clientlib.(*callbacks)", "clientlib.(*Subscription).pump")
}

// queued counts the messages waiting in a synchronous subscription's queue,
// taking them: Next with an ended context returns what is queued first.
func queued(t *testing.T, s *Subscription) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	for {
		if _, err := s.Next(ctx); err != nil {
			return n
		}
		n++
	}
}
