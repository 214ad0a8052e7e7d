package clientlib

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tally records which messages a queue group delivered, and how often.
type tally struct {
	mu   sync.Mutex
	seen map[int]int
}

func (ta *tally) handler(m *Msg) {
	n, _ := strconv.Atoi(string(m.Data))
	ta.mu.Lock()
	ta.seen[n]++
	ta.mu.Unlock()
}

func TestQueueGroupChurnLosesAndDuplicatesNothing(t *testing.T) {
	path, _ := startBus(t)
	ta := &tally{seen: map[int]int{}}
	// One member stays throughout, so every message has a member to go to.
	steady := connect(t, path)
	first, err := steady.QueueSubscribe("churn.job", "workers", ta.handler)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, steady)

	// Several publishers, so that messages are being routed at the moment
	// a member's UNSUB is handled: the race a draining member must survive.
	const pubs, perPub = 4, 4000
	const n = pubs * perPub
	published := make(chan error, pubs)
	for p := range pubs {
		pub := connect(t, path)
		go func() {
			for i := range perPub {
				if err := pub.Publish("churn.job", []byte(strconv.Itoa(p*perPub+i))); err != nil {
					published <- err
					return
				}
				if i%50 == 0 { // let members come and go between bursts
					if err := pub.Flush(testCtx(t)); err != nil {
						published <- err
						return
					}
				}
			}
			published <- pub.Flush(testCtx(t))
		}()
	}

	// Members join and leave, on connections of their own and on the
	// steady one, while the publisher runs.
	joined := 0
	for finished := 0; finished < pubs; joined++ {
		select {
		case err := <-published:
			if err != nil {
				t.Fatal(err)
			}
			finished++
		default:
		}
		c := steady
		if joined%2 == 0 {
			c = connect(t, path)
		}
		s, err := c.QueueSubscribe("churn.job", "workers", ta.handler)
		if err != nil {
			t.Fatal(err)
		}
		flush(t, c)
		if err := s.Drain(testCtx(t)); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if c != steady {
			c.Close()
		}
	}
	if err := first.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for i := range n {
		if ta.seen[i] != 1 {
			t.Fatalf("message %d delivered %d times to the group (%d members came and went)", i, ta.seen[i], joined)
		}
	}
	if len(ta.seen) != n {
		t.Fatalf("group saw %d distinct messages; want %d", len(ta.seen), n)
	}
}

func TestDrainKeepsQueuedMessagesForNext(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	s, err := c.SubscribeSync("drain.me")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	for i := range 5 {
		c.Publish("drain.me", []byte(fmt.Sprint(i)))
	}
	if err := s.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	c.Publish("drain.me", []byte("after the drain"))
	flush(t, c)
	for i := range 5 {
		if m := next(t, s); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.Data)
		}
	}
	if m, err := s.Next(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after the drained messages: %v, %v; want ErrClosed", m, err)
	}
	if err := s.Drain(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("draining twice: %v; want ErrClosed", err)
	}
	if err := s.Unsubscribe(); !errors.Is(err, ErrClosed) {
		t.Fatalf("unsubscribing a drained subscription: %v; want ErrClosed", err)
	}
}

func TestDrainHandsEveryMessageToAChannel(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	ch := make(chan *Msg, 1000)
	s, err := c.SubscribeChan("drain.ch", ch)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	for i := range 500 {
		c.Publish("drain.ch", []byte(strconv.Itoa(i)))
	}
	if err := s.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if len(ch) != 500 {
		t.Fatalf("the channel got %d of 500 messages published before Drain", len(ch))
	}
}

func TestDrainFromItsOwnHandlerEndsWithTheConnection(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	drained := make(chan error, 1)
	if _, err := c.Subscribe("drain.self", func(m *Msg) {
		drained <- m.Subscription().Drain(context.Background())
	}); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	c.Publish("drain.self", nil)
	flush(t, c)
	c.Close()
	select {
	case <-drained:
	case <-testCtx(t).Done():
		t.Fatal("Drain called from its handler never returned, even after Close")
	}
}

func TestDrainAndUnsubscribeRaceSendOneUnsub(t *testing.T) {
	path, _ := startBus(t)
	var errs atomic.Int32
	c := connect(t, path, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs.Add(1) }))
	for range 50 {
		s, err := c.SubscribeSync("race.x")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { s.Drain(testCtx(t)) })
		wg.Go(func() { s.Unsubscribe() })
		wg.Wait()
	}
	flush(t, c)
	if n := errs.Load(); n != 0 {
		t.Fatalf("the broker refused %d UNSUBs: both calls sent one", n)
	}
}

func TestDrainWithEndedContextStillEnds(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	s, err := c.SubscribeSync("drain.ctx")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with a cancelled context: %v", err)
	}
	if _, err := s.Next(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after a failed Drain: %v; want ErrClosed", err)
	}
	if err := s.Unsubscribe(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Unsubscribe after a failed Drain: %v; want ErrClosed", err)
	}
}

func TestUnsubscribeStopsTheHandlerMidBatch(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	gate := make(chan struct{})
	var calls atomic.Int32
	s, err := c.Subscribe("unsub.mid", func(m *Msg) {
		if calls.Add(1) == 1 {
			<-gate // the rest of the batch waits in the handler's goroutine
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	for range 100 {
		c.Publish("unsub.mid", nil)
	}
	flush(t, c)
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	close(gate)
	<-s.pumpDone // the handler's goroutine has finished with the batch
	if n := calls.Load(); n != 1 {
		t.Fatalf("the handler ran %d times; after Unsubscribe it must not run again", n)
	}
}

// Messages a handler subscription has received are still handled when
// the connection ends; only Unsubscribe discards them.
func TestHandlerGetsQueuedMessagesAfterTheConnectionEnds(t *testing.T) {
	path, srv := startBus(t)
	c := connect(t, path, WithNoReconnect(), WithErrorHandler(func(*Conn, *Subscription, error) {}))
	gate := make(chan struct{})
	var calls atomic.Int32
	s, err := c.Subscribe("end.q", func(m *Msg) {
		if calls.Add(1) == 1 {
			<-gate
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	for range 100 {
		c.Publish("end.q", nil)
	}
	flush(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	<-c.quit
	close(gate)
	<-s.pumpDone
	if n := calls.Load(); n != 100 {
		t.Fatalf("the handler ran for %d of 100 messages received before the connection ended", n)
	}
}
