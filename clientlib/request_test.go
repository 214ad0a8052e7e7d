package clientlib

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus"
)

func TestRequestReply(t *testing.T) {
	t.Run("given", func(t *testing.T) { testRequestReply(t) })
	t.Run("lent", func(t *testing.T) { testRequestReply(t, ReuseMessages()) })
}

// testRequestReply serves requests with a handler subscribed with opts.
func testRequestReply(t *testing.T, opts ...SubOption) {
	path, _ := startBus(t)
	svc := connect(t, path)
	if _, err := svc.Subscribe("math.double", func(m *Msg) {
		var n int
		fmt.Sscan(string(m.Data), &n)
		m.Respond([]byte(fmt.Sprint(2 * n)))
	}, opts...); err != nil {
		t.Fatal(err)
	}
	flush(t, svc)
	c := connect(t, path)
	var wg sync.WaitGroup
	for i := range 50 { // many in flight from many goroutines
		wg.Go(func() {
			r, err := c.Request(testCtx(t), "math.double", []byte(fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
				return
			}
			if string(r.Data) != fmt.Sprint(2*i) {
				t.Errorf("double(%d) = %s", i, r.Data)
			}
		})
	}
	wg.Wait()
	if n := len(c.inbox.waiting); n != 0 {
		t.Fatalf("%d requests still registered", n)
	}
}

func TestRequestNoResponders(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	start := time.Now()
	_, err := c.Request(testCtx(t), "nobody.serves.this", []byte("?"))
	if !errors.Is(err, ErrNoResponders) || !strings.Contains(err.Error(), `"nobody.serves.this"`) {
		t.Fatalf("got %v; want ErrNoResponders naming the topic", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: the requester waited instead of hearing at once", d)
	}
}

func TestRequestCancelledDropsLateReply(t *testing.T) {
	path, _ := startBus(t)
	release := make(chan struct{})
	svc := connect(t, path)
	svc.Subscribe("slow", func(m *Msg) { <-release; m.Respond([]byte("late")) })
	flush(t, svc)
	c := connect(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, "slow", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want the deadline", err)
	}
	close(release)
	flush(t, svc)
	flush(t, c) // the late reply has arrived and was dropped
	if n := len(c.inbox.waiting); n != 0 {
		t.Fatalf("%d requests still registered", n)
	}
	// The connection carries on.
	svc.Subscribe("fast", func(m *Msg) { m.Respond([]byte("ok")) })
	flush(t, svc)
	if r, err := c.Request(testCtx(t), "fast", nil); err != nil || string(r.Data) != "ok" {
		t.Fatalf("got %v, %v", r, err)
	}
}

func TestRespondMsgCarriesHeaders(t *testing.T) {
	path, _ := startBus(t)
	svc := connect(t, path)
	svc.Subscribe("hdr.echo", func(m *Msg) {
		m.RespondMsg(&Msg{Topic: "ignored", Header: HeaderOf("Echo", m.Header.Get("Ask")), Data: []byte("ok")})
	})
	flush(t, svc)
	c := connect(t, path)
	r, err := c.RequestMsg(testCtx(t), &Msg{Topic: "hdr.echo", Header: HeaderOf("Ask", "v1")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("Echo") != "v1" || string(r.Data) != "ok" || !strings.HasPrefix(r.Topic, InboxPrefix) {
		t.Fatalf("reply %q on %q with header %v", r.Data, r.Topic, r.Header)
	}
	if err := (&Msg{Topic: "x"}).RespondMsg(&Msg{}); !errors.Is(err, ErrNoReply) {
		t.Fatalf("RespondMsg without a reply topic: %v; want ErrNoReply", err)
	}
}

func TestRequestFailsAtOnceWhenTheInboxIsRefused(t *testing.T) {
	path, _ := startBusWith(t, func(cfg *bus.Config) { cfg.MaxSubs = 1 })
	svc := connect(t, path)
	svc.Subscribe("svc.echo", func(m *Msg) { m.Respond(m.Data) })
	flush(t, svc)
	c := connect(t, path, WithErrorHandler(func(*Conn, *Subscription, error) {}))
	if _, err := c.SubscribeSync("uses.the.only.slot"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the one waiting when the refusal comes, and a later one
		_, err := c.Request(testCtx(t), "svc.echo", nil)
		if !errors.Is(err, ErrTooManySubscriptions) || !strings.Contains(err.Error(), "inbox") {
			t.Fatalf("request %d: %v; want the inbox's refusal, not a timeout", i, err)
		}
	}
}

func TestReplyDoesNotExposeTheInbox(t *testing.T) {
	path, _ := startBus(t)
	svc := connect(t, path)
	svc.Subscribe("svc.echo", func(m *Msg) { m.Respond(m.Data) })
	flush(t, svc)
	c := connect(t, path)
	r, err := c.Request(testCtx(t), "svc.echo", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Subscription() != nil {
		t.Fatal("a reply hands out the connection's inbox subscription")
	}
}
