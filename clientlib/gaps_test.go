package clientlib

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/wire"
)

// report is one call of the error handler.
type report struct {
	sub *Subscription
	err error
}

// reports returns an error handler option and the channel it sends to.
func reports() (Option, chan report) {
	ch := make(chan report, 1024)
	return WithErrorHandler(func(_ *Conn, s *Subscription, err error) { ch <- report{s, err} }), ch
}

// nextReport waits for the error handler's next call.
func nextReport(t *testing.T, ch chan report) report {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-testCtx(t).Done():
		t.Fatal("the error handler was not called")
		return report{}
	}
}

// lostError returns err as a *LostError, failing the test if it is not one
// that matches ErrSlowConsumer.
func lostError(t *testing.T, err error) *LostError {
	t.Helper()
	var le *LostError
	if !errors.As(err, &le) || !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("reported %v; want a *LostError matching ErrSlowConsumer", err)
	}
	return le
}

func TestGapNoticeIsCountedAndReportedButNeverDelivered(t *testing.T) {
	fb := newFakeBus(t)
	opt, reported := reports()
	c := fb.connect(opt)
	a, err := c.SubscribeSync("g.>")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.SubscribeSync("g.>") // shares a's broker subscription
	if err != nil {
		t.Fatal(err)
	}
	sub := fb.expect(wire.OpSub)
	const why = "this connection's queue of 10 bytes is full"
	fb.write(msg(sub.ID, 3, "g.1", nil, "one"), gap(sub.ID, "g.>", 5, why), msg(sub.ID, 3, "g.2", nil, "two"),
		gap(sub.ID, "g.>", 2, why))
	for _, s := range []*Subscription{a, b} {
		for _, want := range []string{"one", "two"} {
			if m := next(t, s); string(m.Data) != want || m.Origin.Conn != 3 {
				t.Fatalf("got %q from connection %d; want %q: a gap notice is no message", m.Data, m.Origin.Conn, want)
			}
		}
	}
	// Each member hears of each notice, in order.
	seen := map[*Subscription][]*LostError{}
	for range 4 {
		r := nextReport(t, reported)
		seen[r.sub] = append(seen[r.sub], lostError(t, r.err))
	}
	for _, s := range []*Subscription{a, b} {
		got := seen[s]
		if len(got) != 2 {
			t.Fatalf("subscription got %d reports; want one per notice, 2", len(got))
		}
		for i, want := range []LostError{{"g.>", 5, 5, true, why}, {"g.>", 2, 7, true, why}} {
			if *got[i] != want {
				t.Errorf("report %d is %+v; want %+v", i, *got[i], want)
			}
		}
		if n := s.Dropped(); n != 7 {
			t.Errorf("Dropped = %d; want the 7 the broker lost", n)
		}
	}
}

func TestQueueDropsAreReportedAsLostErrors(t *testing.T) {
	path, _ := startBus(t)
	opt, reported := reports()
	c := connect(t, path, WithSubscriptionLimits(10, 1<<20), opt)
	s, err := c.SubscribeSync("many")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	for range 100 {
		c.Publish("many", []byte("x"))
	}
	flush(t, c)
	le := lostError(t, nextReport(t, reported).err)
	if le.InBroker || le.Pattern != "many" || le.Lost == 0 || le.Total < le.Lost {
		t.Fatalf("report %+v; want the queue's first drops of \"many\"", *le)
	}
	if n := s.Dropped(); n != 90 {
		t.Fatalf("Dropped = %d; want 90", n)
	}
}

// freezeReader stops c's reader at the next MSG it reads, until thaw, so
// that the broker's queue for c fills: the reader takes subsMu to look the
// subscription up whenever subsGen has changed.
func freezeReader(t *testing.T, c *Conn) (thaw func()) {
	c.subsMu.Lock()
	c.subsGen.Add(1)
	var once sync.Once
	thaw = func() { once.Do(c.subsMu.Unlock) }
	t.Cleanup(thaw)
	return thaw
}

// flood publishes n numbered messages of 32 KiB to topic, then floodSmall
// tiny ones, and waits until the broker has routed them all: for n = 256,
// 8 MiB, more than the kernel buffers and the broker's queue (tinyQueues)
// hold for a receiver that does not read, and then what fills that queue
// to within a few bytes of full.
func flood(t *testing.T, pc *Conn, topic string, n int) {
	t.Helper()
	data := make([]byte, 32<<10)
	for i := range n {
		copy(data, strconv.Itoa(i)+" ")
		if err := pc.Publish(topic, data); err != nil {
			t.Fatal(err)
		}
	}
	for i := n; i < n+floodSmall; i++ {
		if err := pc.Publish(topic, []byte(strconv.Itoa(i)+" ")); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, pc)
}

// floodSmall is how many tiny messages flood sends: more than fit in
// tinyQueues' MaxPending.
const floodSmall = 2048

// tinyQueues is a broker configuration whose connections' queues fill at
// once, and whose publishers do not wait long for room.
func tinyQueues(cfg *bus.Config) {
	cfg.MaxPending = 64 << 10
	cfg.StallBudget = time.Millisecond
	cfg.WriteTimeout = time.Minute
}

// A subscriber whose connection fell behind gets every message the broker
// did not drop, in order, and is told of every one it did.
func TestBrokerLossesAreCountedAndEveryMessageAccountedFor(t *testing.T) {
	path, _ := startBusWith(t, tinyQueues)
	opt, reported := reports()
	sc := connect(t, path, opt)
	s, err := sc.SubscribeSync("flood")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sc)
	thaw := freezeReader(t, sc)
	const n = 256 + floodSmall // what flood sends for 256
	flood(t, connect(t, path), "flood", 256)
	thaw()

	msgs := make(chan *Msg)
	go func() {
		for {
			m, err := s.Next(context.Background())
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	received, last, reportedLost := 0, -1, uint64(0)
	for received+int(reportedLost) < n {
		select {
		case m := <-msgs:
			i, _ := strconv.Atoi(string(m.Data[:indexSpace(m.Data)]))
			if i <= last {
				t.Fatalf("message %d after %d: out of order", i, last)
			}
			last = i
			received++
		case r := <-reported:
			le := lostError(t, r.err)
			if !le.InBroker || r.sub != s {
				t.Fatalf("report %+v for %v; want the broker's losses of the subscription", *le, r.sub)
			}
			reportedLost += le.Lost
		case <-testCtx(t).Done():
			t.Fatalf("received %d and heard of %d lost, of %d published", received, reportedLost, n)
		}
	}
	if reportedLost == 0 {
		t.Fatal("nothing was lost: the test did not make the subscriber fall behind")
	}
	if d := s.Dropped(); d != reportedLost {
		t.Fatalf("Dropped = %d; the reports said %d", d, reportedLost)
	}
	s.Unsubscribe()
}

// indexSpace returns where the first space in b is.
func indexSpace(b []byte) int {
	for i, c := range b {
		if c == ' ' {
			return i
		}
	}
	return len(b)
}

func TestDisconnectWhenSlowEndsTheConnectionInsteadOfLosing(t *testing.T) {
	path, _ := startBusWith(t, tinyQueues)
	opt, reported := reports()
	sc := connect(t, path, opt, WithNoReconnect())
	if _, err := sc.SubscribeSync("strict", DisconnectWhenSlow()); err != nil {
		t.Fatal(err)
	}
	flush(t, sc)
	thaw := freezeReader(t, sc)
	flood(t, connect(t, path), "strict", 256)
	thaw()
	select {
	case <-sc.quit:
	case <-testCtx(t).Done():
		t.Fatal("the connection of a subscriber that fell behind, with DisconnectWhenSlow, is still open")
	}
	if err := sc.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("the connection ended with %v; want ErrSlowConsumer", err)
	}
	for {
		r := nextReport(t, reported)
		var le *LostError
		if errors.As(r.err, &le) {
			t.Fatalf("reported %v: with DisconnectWhenSlow nothing may be dropped", r.err)
		}
		if errors.Is(r.err, ErrSlowConsumer) {
			break // the error that ended the connection
		}
	}
}

func TestDisconnectWhenSlowIsThePolicyOfItsOwnBrokerSubscription(t *testing.T) {
	fb := newFakeBus(t)
	c := fb.connect()
	for _, opts := range [][]SubOption{nil, {DisconnectWhenSlow()}, {DisconnectWhenSlow()}, nil} {
		if _, err := c.SubscribeSync("p", opts...); err != nil {
			t.Fatal(err)
		}
	}
	go c.Flush(context.Background())
	if f := fb.expect(wire.OpSub); f.Flags != 0 {
		t.Fatalf("the default policy's SUB has flags %#x; want 0", f.Flags)
	}
	if f := fb.expect(wire.OpSub); f.Flags != wire.SubDisconnect {
		t.Fatalf("DisconnectWhenSlow's SUB has flags %#x; want SubDisconnect", f.Flags)
	}
	fb.pong() // and not a third SUB: equal policies share one
}

func TestReuseMessagesNeedsAHandler(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	if _, err := c.SubscribeSync("r", ReuseMessages()); err == nil {
		t.Error("SubscribeSync with ReuseMessages: no error; nothing would give the Msgs back")
	}
	if _, err := c.SubscribeChan("r", make(chan *Msg), ReuseMessages()); err == nil {
		t.Error("SubscribeChan with ReuseMessages: no error; nothing would give the Msgs back")
	}
}

// A reader waiting for the next message of its stream when the broker
// reports that its subscription lost some fails at once: the rest of the
// stream, its end among it, may never come.
func TestTopicReaderFailsAtOnceOnAGapNotice(t *testing.T) {
	fb := newFakeBus(t)
	c := fb.connect()
	made := make(chan *TopicReader, 1)
	go func() {
		r, err := c.NewTopicReader(testCtx(t), "s.t")
		if err != nil {
			t.Error(err)
		}
		made <- r
	}()
	sub := fb.expect(wire.OpSub)
	fb.pong()
	r := <-made
	if r == nil {
		t.FailNow()
	}
	fb.write(msg(sub.ID, 3, "s.t", wire.AppendField(nil, StreamSeqHeader, "0"), "hello"))
	b := make([]byte, 5)
	if n, err := r.Read(b); err != nil || string(b[:n]) != "hello" {
		t.Fatalf("Read = %q, %v; want the stream's first bytes", b[:n], err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := r.Read(b) // waits: nothing more has come
		read <- err
	}()
	fb.write(gap(sub.ID, "s.t", 3, "this connection's queue is full"))
	select {
	case <-r.wait.Done(): // what a Read waiting for a message waits on
	case <-testCtx(t).Done():
		t.Fatal("the gap notice did not end the reader's wait")
	}
	select {
	case err := <-read:
		if !errors.Is(err, ErrStreamGap) {
			t.Fatalf("Read after a gap notice: %v; want ErrStreamGap", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("Read still waits after its subscription lost messages")
	}
}
