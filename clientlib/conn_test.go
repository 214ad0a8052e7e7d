package clientlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

func TestPublishSubscribe(t *testing.T) {
	path, _ := startBus(t)
	sub := connect(t, path)
	pub := connect(t, path)
	sync, err := sub.SubscribeSync("app.*.opened")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Msg, 1)
	if _, err := sub.Subscribe("app.>", func(m *Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	if err := pub.PublishMsg(&Msg{Topic: "app.editor.opened", Reply: "app.r", Header: HeaderOf("k", "v"), Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	m := next(t, sync)
	if m.Topic != "app.editor.opened" || string(m.Data) != "hi" || m.Reply != "app.r" || m.Header.Get("k") != "v" {
		t.Fatalf("got %+v", m)
	}
	if m.Origin.Conn != pub.ConnID() || m.Origin.PID != os.Getpid() || m.Origin.UID != os.Getuid() || m.Origin.GID != os.Getgid() {
		t.Fatalf("origin %+v; want conn %d pid %d", m.Origin, pub.ConnID(), os.Getpid())
	}
	select {
	case m := <-got:
		if string(m.Data) != "hi" {
			t.Fatalf("handler got %q", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
}

func TestSubscribeChanAndUnsubscribe(t *testing.T) {
	path, srv := startBus(t)
	c := connect(t, path)
	ch := make(chan *Msg, 4)
	s, err := c.SubscribeChan("c", ch)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	c.Publish("c", []byte("1"))
	if m := <-ch; string(m.Data) != "1" {
		t.Fatalf("got %q", m.Data)
	}
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	if n := srv.Stats().Subs; n != 0 {
		t.Fatalf("broker has %d subscriptions after Unsubscribe", n)
	}
	if _, err := s.Next(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Unsubscribe: %v", err)
	}
}

func TestLocalValidation(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	if err := c.Publish("a..b", nil); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("Publish(a..b) = %v", err)
	}
	if err := c.Publish("a.*", nil); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("Publish(a.*) = %v", err)
	}
	if _, err := c.SubscribeSync("a.>.b"); !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("Subscribe(a.>.b) = %v", err)
	}
	if _, err := c.QueueSubscribeSync("a", "g h"); !errors.Is(err, ErrInvalidGroup) {
		t.Errorf("QueueSubscribe(group with space) = %v", err)
	}
	// Over max_payload a payload goes in a memfd (largepayload.go),
	// unless the connection sends everything inline.
	big := make([]byte, c.Limits().MaxPayload+1)
	inline := connect(t, path, WithLargePayloadThreshold(-1))
	if err := inline.Publish("a", big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Publish(too big), inline only = %v", err)
	}
	if err := c.PublishMsg(&Msg{Topic: "a", Header: HeaderOf("bad key", "v")}); err == nil {
		t.Error("PublishMsg with a bad header key succeeded")
	}
}

func TestServerErrorReachesHandler(t *testing.T) {
	path, _ := startBus(t)
	errs := make(chan error, 1)
	c := connect(t, path, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs <- err }))
	if err := c.Publish("$SYS.x", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		var se *ServerError
		if !errors.As(err, &se) || se.Op.String() != "PUB" {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no error reported")
	}
	flush(t, c) // the connection lives on
}

func TestOrderPerPublisherManyToMany(t *testing.T) {
	path, _ := startBus(t)
	const pubs, subs, n = 4, 4, 3000
	var subscriptions []*Subscription
	for range subs {
		c := connect(t, path)
		s, err := c.SubscribeSync("order.>")
		if err != nil {
			t.Fatal(err)
		}
		flush(t, c)
		subscriptions = append(subscriptions, s)
	}
	var wg sync.WaitGroup
	for p := range pubs {
		c := connect(t, path)
		wg.Go(func() {
			for i := range n {
				if err := c.Publish(fmt.Sprintf("order.%d", p), []byte(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for si, s := range subscriptions {
		want := make([]int, pubs)
		for range pubs * n {
			m := next(t, s)
			var p, i int
			fmt.Sscanf(m.Topic, "order.%d", &p)
			fmt.Sscan(string(m.Data), &i)
			if i != want[p] {
				t.Fatalf("subscriber %d: publisher %d's message %d came when %d was due", si, p, i, want[p])
			}
			want[p]++
		}
	}
}

func TestCloseEndsSubscriptionsAndFlushes(t *testing.T) {
	path, _ := startBus(t)
	rx := connect(t, path)
	s, _ := rx.SubscribeSync("bye")
	flush(t, rx)
	tx, err := Connect(testCtx(t), WithSocket(path))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		tx.Publish("bye", []byte(fmt.Sprint(i)))
	}
	tx.Close() // flushes what was published
	for i := range 1000 {
		if m := next(t, s); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, m.Data)
		}
	}
	if err := tx.Publish("bye", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := tx.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	rx.Close()
	if _, err := s.Next(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestConnectFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := Connect(ctx, WithSocket("/nonexistent/busd/x.sock"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v; want a not-exist error naming the path", err)
	}
}

// A name the broker would refuse is refused by Connect before it dials;
// the longest the broker takes works.
func TestConnectNameLimit(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path, WithName(strings.Repeat("n", wire.MaxNameLen)))
	flush(t, c)
	_, err := Connect(testCtx(t), WithSocket(path), WithName(strings.Repeat("n", wire.MaxNameLen+1)))
	if err == nil || !strings.Contains(err.Error(), "name of 256 bytes") {
		t.Fatalf("got %v; want the name refused", err)
	}
}

// Group names the broker refuses, a wildcard alone or an invisible
// character, are refused before anything is sent.
func TestInvalidGroupNamesAreRefused(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	for _, g := range []string{"*", ">", "g\u200b"} {
		if _, err := c.QueueSubscribeSync("a", g); !errors.Is(err, ErrInvalidGroup) {
			t.Errorf("group %q: got %v; want ErrInvalidGroup", g, err)
		}
	}
	if _, err := c.QueueSubscribeSync("a", "a*b"); err != nil {
		t.Errorf("group \"a*b\": %v", err)
	}
	flush(t, c)
}

// A connection the broker ends tells the error handler: a subscriber that
// only has handlers would otherwise just stop hearing anything.
func TestEndOfConnectionReachesErrorHandler(t *testing.T) {
	path, srv := startBus(t)
	errs := make(chan error, 4)
	c := connect(t, path, WithNoReconnect(), WithErrorHandler(func(_ *Conn, sub *Subscription, err error) {
		if sub == nil {
			errs <- err
		}
	}))
	flush(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	select {
	case err := <-errs:
		var se *ServerError
		if !errors.As(err, &se) || se.Code.Error() != "shutting down" {
			t.Fatalf("handler got %v; want the broker's shutting down", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the end of the connection was not reported")
	}
}

// Closing the connection from the error handler must not deadlock: the
// handler runs on a goroutine of its own.
func TestCloseFromErrorHandler(t *testing.T) {
	path, srv := startBus(t)
	closed := make(chan error, 1)
	var c *Conn
	c = connect(t, path, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) {
		closed <- c.Close()
	}))
	flush(t, c)
	c.Publish("$SYS.x", nil) // a non-fatal ERR reaches the handler
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close from the error handler deadlocked")
	}
	_ = srv
}

// Publishing to the topic published to last allocates nothing: the frame is
// appended to the connection's reused buffer.
func TestPublishDoesNotAllocate(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	data := []byte("0123456789abcdef")
	c.Publish("alloc.topic", data)
	flush(t, c)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.Publish("alloc.topic", data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.1 {
		t.Fatalf("Publish allocates %v times per call", allocs)
	}
}

// Nor does publishing a message with headers: they are encoded on the
// stack, in the order given, and copied into the same buffer.
func TestPublishMsgWithHeaderDoesNotAllocate(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	m := &Msg{Topic: "alloc.topic", Header: HeaderOf("a", "1", "b", "2", "a", "3"), Data: []byte("0123456789abcdef")}
	c.PublishMsg(m)
	flush(t, c)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.1 {
		t.Fatalf("PublishMsg with headers allocates %v times per call", allocs)
	}
}
