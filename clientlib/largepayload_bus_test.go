package clientlib

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
	"unsafe"

	"github.com/busd/busd/bus"
)

// Large payloads through a real broker: every way of publishing and
// receiving, end to end. A payload that went in a memfd shows in the
// publisher's Stats: its PUB is a few dozen bytes, not the payload.

// wentByMemfd fails the test unless c has written fewer bytes than size
// in all: the payload it published cannot have been inline.
func wentByMemfd(t *testing.T, c *Conn, size int) {
	t.Helper()
	if out := c.Stats().BytesOut; out >= uint64(size) {
		t.Fatalf("the connection wrote %d bytes for a payload of %d: it went inline", out, size)
	}
}

// TestLargePublish: 100 MiB published arrives byte for byte as Data, in
// the receiver's own memory, through a payload memfd.
func TestLargePublish(t *testing.T) {
	path, _ := startBus(t)
	pub, recv := connect(t, path), connect(t, path)
	sub, err := recv.SubscribeSync("big.data")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, recv)
	data := randomBytes(100 << 20)
	start := time.Now()
	if err := pub.Publish("big.data", data); err != nil {
		t.Fatal(err)
	}
	m := next(t, sub)
	t.Logf("100 MiB from Publish to Next in %v", time.Since(start))
	if !bytes.Equal(m.Data, data) || m.PayloadFile != nil {
		t.Fatalf("got %d bytes (equal: %v), PayloadFile %v; want the 100 MiB as Data", len(m.Data), bytes.Equal(m.Data, data), m.PayloadFile)
	}
	m.Data[0] ^= 0xff // the receiver's own memory: writable
	wentByMemfd(t, pub, len(data))
}

// TestLargeRequestReply: a large request and a large reply, through the
// inbox, each in a memfd.
func TestLargeRequestReply(t *testing.T) {
	path, _ := startBus(t)
	// Under the default threshold, to show the mechanism at a size that
	// keeps the test light.
	svc, c := connect(t, path, WithLargePayloadThreshold(256<<10)), connect(t, path, WithLargePayloadThreshold(256<<10))
	if _, err := svc.Subscribe("svc.twice", func(m *Msg) {
		m.Respond(append(bytes.Clone(m.Data), m.Data...))
	}); err != nil {
		t.Fatal(err)
	}
	flush(t, svc)
	req := randomBytes(3 << 20)
	reply, err := c.Request(testCtx(t), "svc.twice", req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply.Data, append(bytes.Clone(req), req...)) {
		t.Fatalf("reply of %d bytes is not the request twice", len(reply.Data))
	}
	wentByMemfd(t, c, len(req))
	wentByMemfd(t, svc, 2*len(req))
	if in := c.Stats().BytesIn; in >= uint64(2*len(req)) {
		t.Fatalf("the requester read %d bytes: the reply came inline", in)
	}
}

// TestLargeQueueGroup: each large message goes to one member of a
// group, whole.
func TestLargeQueueGroup(t *testing.T) {
	path, _ := startBus(t)
	pub := connect(t, path, WithLargePayloadThreshold(256<<10))
	got := make(chan []byte, 8)
	for range 2 {
		c := connect(t, path)
		if _, err := c.QueueSubscribe("jobs", "workers", func(m *Msg) { got <- m.Data }); err != nil {
			t.Fatal(err)
		}
		flush(t, c)
	}
	const n = 6
	sent := map[string]bool{}
	for i := range n {
		data := randomBytes(512<<10 + i)
		sent[string(data)] = true
		if err := pub.Publish("jobs", data); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case d := <-got:
			if !sent[string(d)] {
				t.Fatalf("a member got %d bytes that were not sent, or twice", len(d))
			}
			delete(sent, string(d))
		case <-testCtx(t).Done():
			t.Fatalf("%d messages never reached a member", len(sent))
		}
	}
	wentByMemfd(t, pub, n*512<<10)
}

// TestLargeReuseMessages: with ReuseMessages a payload that came in a
// memfd is lent like any Data: right while the handler runs, and its
// buffer, handed back when the handler returns, takes a later payload
// that fits in it.
func TestLargeReuseMessages(t *testing.T) {
	path, _ := startBus(t)
	pub, recv := connect(t, path, WithLargePayloadThreshold(0)), connect(t, path)
	type seen struct {
		ok  bool
		buf *byte
	}
	var sent [][]byte
	for i, size := range []int{2 << 20, 300, 1 << 20, 10} {
		sent = append(sent, randomBytes(size+i))
	}
	got := make(chan seen, len(sent))
	n := 0
	if _, err := recv.Subscribe("big.>", func(m *Msg) {
		got <- seen{bytes.Equal(m.Data, sent[n]), unsafe.SliceData(m.Data)}
		n++
	}, ReuseMessages()); err != nil {
		t.Fatal(err)
	}
	flush(t, recv)
	var bufs []*byte
	for i, d := range sent {
		if err := pub.Publish(fmt.Sprint("big.", i), d); err != nil {
			t.Fatal(err)
		}
		select { // one at a time: the first buffer is back before the third payload comes
		case s := <-got:
			if !s.ok {
				t.Fatalf("message %d's Data differs from what was sent", i)
			}
			bufs = append(bufs, s.buf)
		case <-testCtx(t).Done():
			t.Fatal("a message never arrived")
		}
	}
	if bufs[2] != bufs[0] {
		t.Fatal("the 1 MiB payload was read into new memory, not the 2 MiB one's buffer the handler gave back")
	}
}

// TestLargeThreshold: the threshold decides, end to end; a negative one
// keeps everything inline.
func TestLargeThreshold(t *testing.T) {
	path, _ := startBus(t)
	recv := connect(t, path)
	sub, err := recv.SubscribeSync("t")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, recv)
	for _, tc := range []struct {
		threshold, size int
		memfd           bool
	}{
		{-1, 1 << 20, false},
		{0, 1000, true},
		{0, 0, false},
		{DefaultLargePayloadThreshold, DefaultLargePayloadThreshold, false},
		{DefaultLargePayloadThreshold, DefaultLargePayloadThreshold + 1, true},
	} {
		pub := connect(t, path, WithLargePayloadThreshold(tc.threshold))
		data := randomBytes(tc.size)
		if err := pub.Publish("t", data); err != nil {
			t.Fatal(err)
		}
		if m := next(t, sub); !bytes.Equal(m.Data, data) {
			t.Fatalf("threshold %d: %d bytes arrived as %d", tc.threshold, tc.size, len(m.Data))
		}
		if inline := pub.Stats().BytesOut >= uint64(tc.size); tc.size > 0 && inline == tc.memfd {
			t.Fatalf("threshold %d, %d bytes: wrote %d bytes; want in a memfd: %v", tc.threshold, tc.size, pub.Stats().BytesOut, tc.memfd)
		}
	}
}

// TestLargeNoFDPayloadBroker: a broker that takes no payloads in memfds
// gets them inline up to its max_payload; over it Publish says
// ErrTooLarge.
func TestLargeNoFDPayloadBroker(t *testing.T) {
	path, _ := startBusWith(t, func(cfg *bus.Config) { cfg.MaxFDPayload = 0; cfg.Limits.MaxPayload = 1 << 20 })
	pub, recv := connect(t, path), connect(t, path)
	sub, err := recv.SubscribeSync("t")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, recv)
	data := randomBytes(1 << 20)
	if err := pub.Publish("t", data); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); !bytes.Equal(m.Data, data) {
		t.Fatalf("%d bytes arrived as %d", len(data), len(m.Data))
	}
	if err := pub.Publish("t", randomBytes(1<<20+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Publish over max_payload, no memfds: %v; want ErrTooLarge", err)
	}
}

// TestLargeTopicStream: a topic stream whose chunks go in memfds reads
// back whole.
func TestLargeTopicStream(t *testing.T) {
	path, _ := startBus(t)
	wc, rc := connect(t, path, WithLargePayloadThreshold(1024)), connect(t, path)
	r, err := rc.NewTopicReader(testCtx(t), "stream.big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	flush(t, rc)
	w, err := wc.NewTopicWriter("stream.big")
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3<<20 + 17)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes back of %d (equal: %v)", len(got), len(data), bytes.Equal(got, data))
	}
	wentByMemfd(t, wc, len(data))
}

// reconnectingWithLarge returns a Conn subscribed to "own", reconnecting
// to path (its broker stopped), that sends payloads over 256 KiB in
// memfds and keeps 10 MiB while reconnecting.
func reconnectingWithLarge(t *testing.T, onErr Option) (string, *Conn, chan connEvent, *Subscription) {
	t.Helper()
	path, srv, c, events := eventConn(t, onErr, WithReconnectBuffer(10<<20), WithLargePayloadThreshold(256<<10))
	own, err := c.SubscribeSync("own")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	return path, c, events, own
}

// TestLargeReconnectBuffer: a large message published while reconnecting
// is kept with its memfd, counted at its size, and delivered after the
// reconnect; one that reaches nobody is reported with its bytes.
func TestLargeReconnectBuffer(t *testing.T) {
	onErr, undelivered := undeliveredOptions()
	path, c, events, own := reconnectingWithLarge(t, onErr)

	mine, theirs := randomBytes(4<<20), randomBytes(4<<20+1)
	if err := c.Publish("own", mine); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("theirs", theirs); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("own", randomBytes(2<<20)); !errors.Is(err, ErrReconnectBufferFull) {
		t.Fatalf("a third large message: %v; want ErrReconnectBufferFull (the memfds count at their size)", err)
	}
	c.mu.Lock()
	fds := c.fds
	c.mu.Unlock()
	if fds != 2 {
		t.Fatalf("%d descriptors counted for 2 kept memfds", fds)
	}

	serveOn(t, path)
	nextConnEvent(t, events, "reconnected")
	if m := next(t, own); !bytes.Equal(m.Data, mine) {
		t.Fatalf("the kept message arrived as %d bytes of %d", len(m.Data), len(mine))
	}
	u := nextUndelivered(t, undelivered)
	if !errors.Is(u, ErrNotDelivered) || u.Msg.Topic != "theirs" || !bytes.Equal(u.Msg.Data, theirs) {
		t.Fatalf("report %v with %d bytes; want theirs not delivered, with its %d bytes", u, len(u.Msg.Data), len(theirs))
	}
	flush(t, c)
	c.mu.Lock()
	left, mem := len(c.replays), c.replayMem
	c.mu.Unlock()
	if left != 0 || mem != 0 {
		t.Fatalf("%d copies (%d bytes) kept after every receipt came", left, mem)
	}
}

// TestLargePayloadFiles: PayloadFiles hands over the memfd, checked, for
// a PayloadFile published as it is.
func TestLargePayloadFiles(t *testing.T) {
	path, _ := startBus(t)
	pub, recv := connect(t, path), connect(t, path)
	sub, err := recv.SubscribeSync("files", PayloadFiles())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, recv)
	data := randomBytes(8 << 20)
	pf := sealed(t, data)
	if err := pub.PublishMsg(&Msg{Topic: "files", PayloadFile: pf}); err != nil {
		t.Fatal(err)
	}
	m := next(t, sub)
	defer m.CloseFiles()
	if m.PayloadFile == nil || m.Data != nil {
		t.Fatalf("PayloadFile %v, Data of %d bytes; want the memfd only", m.PayloadFile, len(m.Data))
	}
	var got bytes.Buffer
	if _, err := io.Copy(&got, m.PayloadFile); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("copying the PayloadFile: %v, %d bytes (equal: %v)", err, got.Len(), bytes.Equal(got.Bytes(), data))
	}
	if out := pub.Stats().BytesOut; out >= uint64(len(data)) {
		t.Fatalf("the publisher wrote %d bytes", out)
	}
}

// TestLargeReconnectToBrokerWithout: a large message kept while
// reconnecting to a broker that turns out to take no payloads in memfds
// is reported, with its bytes, not sent (which a broker predating them
// would take for a protocol error); the Conn goes on.
func TestLargeReconnectToBrokerWithout(t *testing.T) {
	onErr, undelivered := undeliveredOptions()
	path, c, events, own := reconnectingWithLarge(t, onErr)
	large, small := randomBytes(1<<20), []byte("small")
	if err := c.Publish("own", large); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("own", small); err != nil {
		t.Fatal(err)
	}
	serveWith(t, path, func(cfg *bus.Config) { cfg.MaxFDPayload = 0 })
	nextConnEvent(t, events, "reconnected")
	u := nextUndelivered(t, undelivered)
	if !errors.Is(u, ErrTooLarge) || !bytes.Equal(u.Msg.Data, large) {
		t.Fatalf("report %v with %d bytes; want the large one, too large for this broker", u, len(u.Msg.Data))
	}
	if m := next(t, own); !bytes.Equal(m.Data, small) {
		t.Fatalf("got %d bytes; want the small message, sent after the large one was dropped", len(m.Data))
	}
	flush(t, c)
	c.mu.Lock()
	left, mem, fds := len(c.replays), c.replayMem, c.fds
	c.mu.Unlock()
	if left != 0 || mem != 0 || fds != 0 || c.Status() != Connected {
		t.Fatalf("%d copies, %d bytes, %d descriptors kept; status %v", left, mem, fds, c.Status())
	}
}
