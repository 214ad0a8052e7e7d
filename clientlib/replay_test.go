package clientlib

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// reportingConn starts a broker and connects a Conn to it whose handlers
// send their events and undelivered reports to the channels returned.
func reportingConn(t *testing.T) (string, *bus.Server, *Conn, chan connEvent, chan *UndeliveredError) {
	t.Helper()
	onErr, undelivered := undeliveredOptions()
	path, srv, c, events := eventConn(t, onErr)
	return path, srv, c, events, undelivered
}

// undeliveredOptions returns an error handler that sends every
// *UndeliveredError to the channel it returns.
func undeliveredOptions() (Option, chan *UndeliveredError) {
	ch := make(chan *UndeliveredError, 64)
	return WithErrorHandler(func(_ *Conn, _ *Subscription, err error) {
		if u, ok := errors.AsType[*UndeliveredError](err); ok {
			ch <- u
		}
	}), ch
}

// Messages published while reconnecting are either delivered or reported
// to the error handler, with their content, as not delivered: the Conn's
// own restored subscription gets those on its topic (its SUB goes first);
// those on a topic nobody subscribes to any more (the other subscriber
// did not reconnect) come back in the order published.
func TestUndeliveredPublishesAreReported(t *testing.T) {
	path, srv, c, events, undelivered := reportingConn(t)
	own, err := c.SubscribeSync("own")
	if err != nil {
		t.Fatal(err)
	}
	gone := connect(t, path, WithNoReconnect())
	if _, err := gone.SubscribeSync("theirs"); err != nil {
		t.Fatal(err)
	}
	flush(t, gone)
	flush(t, c)

	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	const n = 5
	for i := range n {
		for _, topic := range []string{"own", "theirs"} {
			if err := c.PublishMsg(&Msg{Topic: topic, Header: HeaderOf("N", fmt.Sprint(i)), Data: []byte(fmt.Sprint(topic, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	serveOn(t, path)
	if e := nextConnEvent(t, events, "reconnected"); e.restored.Messages != 2*n {
		t.Fatalf("restored %+v; want %d messages buffered", e.restored, 2*n)
	}
	for i := range n {
		if m := next(t, own); string(m.Data) != fmt.Sprint("own", i) {
			t.Fatalf("own subscription got %q; want %q", m.Data, fmt.Sprint("own", i))
		}
	}
	for i := range n {
		u := nextUndelivered(t, undelivered)
		want := fmt.Sprint("theirs", i)
		if !errors.Is(u, ErrNotDelivered) || u.Msg.Topic != "theirs" || string(u.Msg.Data) != want || u.Msg.Header.Get("N") != fmt.Sprint(i) {
			t.Fatalf("report %d: %v (%q, %v); want %q not delivered", i, u, u.Msg.Data, u.Msg.Header, want)
		}
	}
	flush(t, c) // every receipt has come: nothing more to report
	expectNoReport(t, c, undelivered)
	c.mu.Lock()
	left, mem := len(c.replays), c.replayMem
	c.mu.Unlock()
	if left != 0 || mem != 0 {
		t.Fatalf("%d copies (%d bytes) kept after every receipt came", left, mem)
	}
	// Published live, a message asks for no receipt.
	if err := c.Publish("theirs", []byte("live")); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	expectNoReport(t, c, undelivered)
}

// expectNoReport checks that nothing was reported before what the error
// handler has been given so far: a marker queued behind it comes first.
// Not after Close: the handlers' queue takes nothing then.
func expectNoReport(t *testing.T, c *Conn, undelivered chan *UndeliveredError) {
	t.Helper()
	marker := make(chan struct{})
	c.cb.pushFunc(func() { close(marker) })
	<-marker
	select {
	case u := <-undelivered:
		t.Fatalf("reported: %v", u)
	default:
	}
}

// nextUndelivered waits for the next report of an undelivered message.
func nextUndelivered(t *testing.T, undelivered chan *UndeliveredError) *UndeliveredError {
	t.Helper()
	select {
	case u := <-undelivered:
		return u
	case <-testCtx(t).Done():
		t.Fatal("no report of an undelivered message")
	}
	panic("unreachable")
}

// fakeSuccessor listens on path, where a broker the Conn knew has gone,
// and plays the next broker for one connection: it answers HELLO with
// info and returns the connection's frames reader.
func fakeSuccessor(t *testing.T, path string, info wire.Info) (*unixsock.Conn, *wire.Reader) {
	t.Helper()
	l, err := unixsock.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sock, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	sock.SetDeadline(time.Now().Add(10 * time.Second)) // the watchdog of the test's broker
	lim := wire.DefaultLimits
	in := wire.NewReader(sock, &lim)
	if f, err := in.Next(nil); err != nil || f.Op != wire.OpHello {
		t.Fatalf("fake successor: %v %v; want HELLO", f.Op, err)
	}
	info.Version, info.ConnID = wire.Version, 2
	info.MaxPayload, info.MaxHeaders, info.MaxFDs, info.MaxSubs = lim.MaxPayload, lim.MaxHeaders, lim.MaxFDs, 100
	body, _ := wire.AppendBody(nil, &info)
	if _, err := sock.Write(wire.AppendControl(nil, wire.OpInfo, 0, body)); err != nil {
		t.Fatal(err)
	}
	return sock, in
}

// publishWhileAway stops srv under c and publishes n messages to topic,
// "0", "1", ...
func publishWhileAway(t *testing.T, c *Conn, srv *bus.Server, events chan connEvent, topic string, n int) {
	t.Helper()
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	for i := range n {
		if err := c.Publish(topic, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// A connection lost again before the receipts came: every message sent on
// it is reported once, in order, as not confirmed (ErrConnectionLost),
// and not sent again.
func TestLostBeforeTheReceiptsReports(t *testing.T) {
	path, srv, c, events, undelivered := reportingConn(t)
	publishWhileAway(t, c, srv, events, "x", 3)
	sock, in := fakeSuccessor(t, path, wire.Info{Receipts: true})
	nextConnEvent(t, events, "reconnected")
	for i := range 3 {
		f, err := in.Next(nil)
		if err != nil || f.Op != wire.OpPub || f.ID == 0 || string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("successor read %v id %d %q, %v; want PUB %d with an id", f.Op, f.ID, f.Payload, err, i)
		}
	}
	sock.Close() // gone before any receipt
	for i := range 3 {
		if u := nextUndelivered(t, undelivered); !errors.Is(u, ErrConnectionLost) || string(u.Msg.Data) != fmt.Sprint(i) {
			t.Fatalf("report %d: %v (%q); want %d not confirmed", i, u, u.Msg.Data, i)
		}
	}
	nextConnEvent(t, events, "disconnected")
	c.Close()
	nextConnEvent(t, events, "closed") // after every report
	expectEmpty(t, undelivered)
}

// expectEmpty checks that nothing more was reported, once the closed
// handler, which runs after every report, has run.
func expectEmpty(t *testing.T, undelivered chan *UndeliveredError) {
	t.Helper()
	select {
	case u := <-undelivered:
		t.Fatalf("reported: %v", u)
	default:
	}
}

// A broker that does not announce receipts gets the messages without ids
// (it would refuse them), and the Conn keeps no copies.
func TestNoReceiptsFromABrokerWithout(t *testing.T) {
	path, srv, c, events, undelivered := reportingConn(t)
	publishWhileAway(t, c, srv, events, "x", 2)
	_, in := fakeSuccessor(t, path, wire.Info{})
	if e := nextConnEvent(t, events, "reconnected"); e.restored.Messages != 2 {
		t.Fatalf("restored %+v; want 2 messages", e.restored)
	}
	for i := range 2 {
		f, err := in.Next(nil)
		if err != nil || f.Op != wire.OpPub || f.ID != 0 || string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("successor read %v id %d %q, %v; want PUB %d without an id", f.Op, f.ID, f.Payload, err, i)
		}
	}
	c.mu.Lock()
	left := len(c.replays)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d copies kept with no receipt to come", left)
	}
	expectNoReport(t, c, undelivered)
}

// Close straight after a reconnect waits for the receipts: a message that
// was delivered is not reported, one that was not is, and a message
// larger than a chunk is reported whole.
func TestCloseAfterReconnectWaitsForTheReceipts(t *testing.T) {
	path, srv, c, events, undelivered := reportingConn(t)
	own, err := c.SubscribeSync("own")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	big := bytes.Repeat([]byte("b"), 3*wire.ChunkSize)
	for _, m := range []struct {
		topic string
		data  []byte
	}{{"own", []byte("kept")}, {"nobody", big}, {"own", big}} {
		if err := c.Publish(m.topic, m.data); err != nil {
			t.Fatal(err)
		}
	}
	serveOn(t, path)
	nextConnEvent(t, events, "reconnected")
	c.Close()
	if u := nextUndelivered(t, undelivered); !errors.Is(u, ErrNotDelivered) || u.Msg.Topic != "nobody" || !bytes.Equal(u.Msg.Data, big) {
		t.Fatalf("report %v (%d bytes); want the large message to nobody, whole", u, len(u.Msg.Data))
	}
	nextConnEvent(t, events, "closed")
	expectEmpty(t, undelivered)
	for _, want := range [][]byte{[]byte("kept"), big} {
		if m, err := own.Next(testCtx(t)); err != nil || !bytes.Equal(m.Data, want) {
			t.Fatalf("own subscription: %v; want %d bytes", err, len(want))
		}
	}
}

// The reconnect buffer bounds the copies, not only the bytes on the wire:
// small messages cost their record too.
func TestReconnectBufferCountsTheCopies(t *testing.T) {
	path, srv := startBus(t)
	opts, events := eventOptions()
	const bound = 64 << 10
	c := connect(t, path, append(opts, WithReconnectBuffer(bound))...)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	n := 0
	for ; ; n++ {
		err := c.Publish("t", []byte{1})
		if errors.Is(err, ErrReconnectBufferFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if max := bound / replayOverhead; n > max || n < max/2 {
		t.Fatalf("%d one-byte messages fitted in %d bytes; want at most %d, each costing its record", n, bound, max)
	}
}

// Close while reconnecting reports what was buffered, with ErrClosed, in
// order: nothing is dropped without a word.
func TestCloseReportsTheBufferedPublishes(t *testing.T) {
	_, srv, c, events, undelivered := reportingConn(t)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	for i := range 3 {
		if err := c.Publish("x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	nextConnEvent(t, events, "closed") // the reports came before it
	var got []byte
	for len(undelivered) > 0 {
		u := <-undelivered
		if !errors.Is(u, ErrClosed) {
			t.Fatalf("report %v; want ErrClosed", u)
		}
		got = append(got, u.Msg.Data...)
	}
	if !slices.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("reported %v; want the three messages in order", got)
	}
}
