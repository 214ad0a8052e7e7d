package clientlib

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
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

	const n = 4000
	pub := connect(t, path)
	published := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Publish("churn.job", []byte(strconv.Itoa(i))); err != nil {
				published <- err
				return
			}
			if i%200 == 0 { // let members come and go between bursts
				if err := pub.Flush(testCtx(t)); err != nil {
					published <- err
					return
				}
			}
		}
		published <- pub.Flush(testCtx(t))
	}()

	// Members join and leave, on connections of their own and on the
	// steady one, while the publisher runs.
	joined := 0
	for done := false; !done; joined++ {
		select {
		case err := <-published:
			if err != nil {
				t.Fatal(err)
			}
			done = true
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
