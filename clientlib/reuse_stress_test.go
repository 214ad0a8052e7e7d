package clientlib

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// TestReuseMessagesWithNextAndUnsubscribe mixes a ReuseMessages handler
// with goroutines calling Next on the same subscription (each message goes
// to one of them) and ends with Unsubscribe while messages flow: a Msg Next
// returned is never refilled, and the handler sees only intact messages.
func TestReuseMessagesWithNextAndUnsubscribe(t *testing.T) {
	path, _ := startBus(t)
	sub := connect(t, path)
	pub := connect(t, path)
	payload := func(i uint64) []byte {
		b := binary.BigEndian.AppendUint64(nil, i)
		return bytes.Repeat(b, 1+int(i%40))
	}
	check := func(m *Msg) bool {
		if len(m.Data) < 8 {
			return false
		}
		return bytes.Equal(m.Data, payload(binary.BigEndian.Uint64(m.Data)))
	}
	bad := make(chan string, 1)
	report := func(s string) {
		select {
		case bad <- s:
		default:
		}
	}
	s, err := sub.Subscribe("mix", func(m *Msg) {
		if !check(m) {
			report("handler saw a corrupt message")
		}
	}, ReuseMessages())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var kept [][]*Msg = make([][]*Msg, 3)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := s.Next(ctx)
				if err != nil {
					return
				}
				kept[g] = append(kept[g], m)
			}
		}()
	}
	for i := range uint64(200_000) {
		if err := pub.Publish("mix", payload(i)); err != nil {
			t.Fatal(err)
		}
		if i == 150_000 {
			go s.Unsubscribe()
		}
	}
	flush(t, pub)
	time.Sleep(100 * time.Millisecond)
	s.Unsubscribe()
	wg.Wait()
	n := 0
	for _, ms := range kept {
		for _, m := range ms {
			n++
			if !check(m) {
				t.Fatal("a Msg returned by Next was refilled")
			}
		}
	}
	t.Logf("Next took %d messages", n)
	select {
	case s := <-bad:
		t.Fatal(s)
	default:
	}
}
