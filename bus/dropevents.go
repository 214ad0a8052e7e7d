package bus

import (
	"time"

	"github.com/busd/busd/bus/wire"
)

// Drops events. A subscriber that loses messages gets gap notices saying
// how many; a watcher of "$SYS.conn.drops.>" learns of it too, without
// one event per loss: a connection's first loss is reported at once, and
// the losses after it are summed until wire.DropsInterval has passed since
// the previous event. The losses are counted when they happen, not when
// the gap notice goes out, so a subscriber that has stopped reading (and
// so gets no notice until it reads again) is reported all the same.
//
// The loss of a drops event is in its subscription's gap notice, and in
// no drops event: a stopped watcher of them would otherwise lose its own
// event, and get one a second about that, for as long as it stays (two
// such watchers, each other's), each reporting the loss of the one before.
//
// The event is published by a timer's goroutine (time.AfterFunc), at most
// one armed per connection, which takes the connection's evMu and then its
// mu; a connection's last report goes out in finish, before its down
// event, and no timer is armed after it.

// dropsReport is what a connection's next drops event will say; under
// the connection's mu.
type dropsReport struct {
	lost  uint64
	subs  [wire.MaxDropsSubs]*subscription // the first to lose in the span; nil past n
	n     int
	timer *time.Timer // armed while losses wait for their event; nil if none do
	last  time.Time   // when the previous event was due
	done  bool        // the connection is closing: no more timers
}

// noteLossLocked records that s, one of c's subscriptions, lost n
// messages, for the next drops event. c.mu is held.
func (c *conn) noteLossLocked(s *subscription, n uint64) {
	d := &c.drops
	if d.done || c.srv.watchers.Load() == 0 {
		return // nobody could receive the event: nothing to sum
	}
	if d.lost == 0 {
		clear(d.subs[:d.n])
		d.n = 0
	}
	d.lost += n
	if !s.inDrops && d.n < len(d.subs) {
		s.inDrops = true
		s.dropsLost = 0
		d.subs[d.n] = s
		d.n++
	}
	if s.inDrops {
		s.dropsLost += n
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(time.Until(d.last.Add(wire.DropsInterval)), c.dropsEvent)
	}
}

// takeDropsLocked returns the event for the losses recorded since the
// previous one, and whether there were any. c.mu is held.
func (c *conn) takeDropsLocked() (wire.DropsEvent, bool) {
	d := &c.drops
	if d.lost == 0 {
		return wire.DropsEvent{}, false
	}
	ev := wire.DropsEvent{
		ConnID: c.id, PID: c.origin.PID, UID: c.origin.UID, GID: c.origin.GID,
		Name: c.name, Since: uint64(c.since.UnixNano()),
		Lost: d.lost, Dropped: c.dropped, Subs: make([]wire.DroppedSub, d.n),
	}
	for i, s := range d.subs[:d.n] {
		ev.Subs[i] = wire.DroppedSub{SID: s.sid, Pattern: s.pattern, Lost: s.dropsLost, Reason: c.reasonText(s.reason)}
		s.inDrops, s.dropsLost = false, 0
	}
	clear(d.subs[:d.n])
	d.lost, d.n = 0, 0
	return ev, true
}

// dropsEvent publishes c's drops event, from its timer.
func (c *conn) dropsEvent() {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	if c.drops.done {
		c.mu.Unlock()
		return // finish reported what was left
	}
	ev, ok := c.takeDropsLocked()
	c.drops.timer = nil
	c.drops.last = time.Now()
	c.mu.Unlock()
	if ok {
		c.publishDrops(&ev)
	}
}

// lastDropsLocked stops c's drops timer for good and returns the losses
// not yet reported. c.evMu and c.mu are held.
func (c *conn) lastDropsLocked() (wire.DropsEvent, bool) {
	c.drops.done = true
	if c.drops.timer != nil {
		c.drops.timer.Stop()
		c.drops.timer = nil
	}
	return c.takeDropsLocked()
}

// publishDrops publishes ev, c's drops event. c.evMu is held, c.mu not.
func (c *conn) publishDrops(ev *wire.DropsEvent) {
	var buf [64]byte
	c.srv.emit(eventTopic(buf[:0], wire.SysConnDrops, c.origin.UID, c.id), ev)
}
