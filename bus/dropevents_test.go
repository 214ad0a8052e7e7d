package bus

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// A subscriber that stops reading loses messages; a watcher of its drops
// events learns of it at once, then at most once a second, and the events
// sum to what it lost, the last one before its down event.
func TestDropsEvents(t *testing.T) {
	_, path := testBroker(t, smallQueues)
	w := subscriber(t, path, "$SYS.conn.>")
	stopped := connectNamed(t, path, "stopped")
	nextConnEvent(t, w, wire.SysConnUp, stopped)
	stopped.sub(5, "flood.*", "")
	stopped.sync()
	pub := connectRaw(t, path)
	nextConnEvent(t, w, wire.SysConnUp, pub)

	start := time.Now()
	const n = 3000
	if err := <-publishNumbered(pub, "flood.x", n, 1024); err != nil {
		t.Fatal(err)
	}
	pub.sync() // every message is routed: queued, or lost
	stopped.sock.Close()

	var events []wire.DropsEvent
	for {
		f := w.next()
		if string(f.Topic) == wire.SysConnDown+eventSuffix(stopped) {
			break
		}
		if string(f.Topic) != wire.SysConnDrops+eventSuffix(stopped) {
			t.Fatalf("got an event on %q; want the drops and down events of conn %d", f.Topic, stopped.info.ConnID)
		}
		var ev wire.DropsEvent
		if err := wire.DecodeBody(f.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	elapsed := time.Since(start)
	if len(events) == 0 {
		t.Fatal("no drops event for a subscriber that lost messages")
	}
	// The first at once, then one per interval at most, and the last at
	// the close.
	if max := 2 + int(elapsed/wire.DropsInterval); len(events) > max {
		t.Fatalf("%d drops events in %v; want at most %d", len(events), elapsed, max)
	}
	var sum uint64
	for _, ev := range events {
		if ev.ConnID != stopped.info.ConnID || ev.Name != "stopped" || ev.Lost == 0 ||
			len(ev.Subs) != 1 || ev.Subs[0].SID != 5 || ev.Subs[0].Pattern != "flood.*" || ev.Subs[0].Lost != ev.Lost || ev.Subs[0].Reason == "" {
			t.Fatalf("drops event %+v; want conn %d's losses on subscription 5", ev, stopped.info.ConnID)
		}
		sum += ev.Lost
	}
	if last := events[len(events)-1]; sum != last.Dropped || sum == 0 || sum >= n {
		t.Fatalf("events sum to %d lost, the last says %d in all; want the same, of %d sent", sum, last.Dropped, n)
	}
}

// eventSuffix returns the "<uid>.<conn id>" that ends c's event topics.
func eventSuffix(c *rawClient) string {
	return fmt.Sprintf("%d.%d", os.Getuid(), c.info.ConnID)
}

// A watcher of drops events that has stopped reading loses its own drops
// event too: that loss is in its gap notice, not in another drops event,
// or the watcher would get one a second about itself for as long as it
// stays connected, each reporting the loss of the one before.
func TestDropsEventLossIsNoDropsEvent(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { smallQueues(c); c.WriteTimeout = time.Minute })
	w := subscriber(t, path, "$SYS.conn.drops.>")
	stopped := connectNamed(t, path, strings.Repeat("n", wire.MaxNameLen)) // its events are large
	stopped.sub(4, "$SYS.conn.drops.>", "")
	stopped.sub(5, "flood", "")
	stopped.sync()
	pub := connectRaw(t, path)
	// More than its socket (2 MiB) and queue hold, until a whole burst is
	// almost all dropped: its socket is full. Then small messages, which
	// leave its queue less room than any of its drops events takes: they
	// find no room.
	for i := 0; ; i++ {
		d := srv.Stats().Dropped
		if err := <-publishNumbered(pub, "flood", 512, 1024); err != nil {
			t.Fatal(err)
		}
		pub.sync()
		if i >= 4 && srv.Stats().Dropped-d >= 400 {
			break
		}
	}
	if err := <-publishNumbered(pub, "flood", 512, 4); err != nil {
		t.Fatal(err)
	}
	pub.sync()
	sc := srv.connByID(stopped.info.ConnID)
	// armed reports whether another drops event about the stopped watcher
	// will come; under evMu, so that none is being published.
	armed := func() bool {
		sc.evMu.Lock()
		defer sc.evMu.Unlock()
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.drops.timer != nil || sc.drops.lost > 0
	}
	// The flood's losses take at most two events from here: one under way
	// and the sum of the rest.
	for i := 0; armed(); i++ {
		if i == 3 {
			t.Fatal("drops events about the stopped watcher keep coming: each reports the loss of the one before")
		}
		for {
			f := w.next()
			if string(f.Topic) == wire.SysConnDrops+eventSuffix(stopped) {
				break
			}
		}
	}
}
