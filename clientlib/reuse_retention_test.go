package clientlib

import (
	"runtime"
	"testing"
	"time"

	"github.com/busd/busd/bus"
)

// TestReuseMessagesStoreKeepsNoLargePayloads: the store of Msgs a
// ReuseMessages subscription keeps for reuse is bounded (maxLentBytes in
// all, each Msg with a buffer of at most maxLentData), and a Msg handed back
// keeps none of its Data, Header or Files. Before the pump cleared them, a
// burst of 1 MiB messages the handler had long finished with stayed
// reachable, 47 MiB of them, for as long as no new message came.
func TestReuseMessagesStoreKeepsNoLargePayloads(t *testing.T) {
	// Every message must reach the subscription's queue: the publisher
	// waits for the subscriber's reader, however slow the race detector
	// makes it, rather than the broker drop what it is behind by.
	path, _ := startBusWith(t, func(cfg *bus.Config) { cfg.StallBudget = 10 * time.Second })
	sub := connect(t, path)
	pub := connect(t, path)
	const n, size = 48, 1 << 20
	release := make(chan struct{})
	done := make(chan struct{})
	got := 0
	s, err := sub.Subscribe("big", func(m *Msg) {
		if got == 0 {
			<-release // let the rest pile up into one batch
		}
		if got++; got == n {
			close(done)
		}
	}, ReuseMessages())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	data := make([]byte, size)
	for range n {
		if err := pub.Publish("big", data); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, pub)
	flush(t, sub) // every message is in the subscription's queue
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d messages handled", got, n)
	}
	data = nil
	var held, stored int
	for range 100 { // the pump hands its last batch back when it next waits
		s.q.mu.Lock()
		held, stored = 0, len(s.q.lent)
		for _, m := range s.q.lent {
			held += cap(m.Data) + cap(m.own) + msgSize
		}
		s.q.mu.Unlock()
		if held > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("store holds %d Msgs' worth of %d bytes; heap in use after GC: %d MiB", stored, held, ms.HeapAlloc>>20)
	if held > maxLentBytes {
		t.Fatalf("the store of idle Msgs keeps %d bytes reachable (limit %d): finished payloads are not released", held, maxLentBytes)
	}
}
