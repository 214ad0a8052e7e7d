package clientlib

import (
	"fmt"
	"strconv"

	"github.com/busd/busd/bus/wire"
)

// A subscription loses messages in two places: in the broker, when the
// connection falls so far behind that the broker has no room left in its
// queue for it, and in the subscription's own queue, when its consumer
// falls behind the connection (WithSubscriptionLimits). Both are counted
// in Subscription.Dropped and reported to the error handler as a
// *LostError. The broker tells of its losses with a gap notice: an empty
// MSG from the broker itself (origin connection 0) with a Bus-Dropped
// header, in place of the messages lost. It is not a message, and no
// handler, channel or Next ever sees one.

// LostError reports messages a subscription lost because it, or its
// connection, fell behind; it matches ErrSlowConsumer. The error handler
// (WithErrorHandler) gets one for every gap notice of the broker (the
// broker coalesces its losses into few notices); for the messages the
// subscription's own queue had no room for, one on the first and then one
// each time their count passes a multiple of 1024.
type LostError struct {
	Pattern string // the subscription's pattern
	// Lost is how many messages this report is about: lost in the broker
	// since its previous notice, or dropped by the queue since the
	// previous report of the queue's drops.
	Lost uint64
	// Total is every message the subscription has lost so far, in the
	// broker and in its queue, as Subscription.Dropped counts them.
	Total uint64
	// InBroker is set for messages the broker dropped because the
	// connection fell behind, and not for those the subscription's queue
	// dropped because its consumer did.
	InBroker bool
	// Reason says which limit the messages did not fit in.
	Reason string
}

// Error says what was lost, where and why.
func (e *LostError) Error() string {
	where := "its queue dropped"
	if e.InBroker {
		where = "the broker dropped"
	}
	return fmt.Sprintf("bus: slow consumer: %s %d messages for subscription %q (%s); %d lost in all",
		where, e.Lost, e.Pattern, e.Reason, e.Total)
}

// Unwrap returns ErrSlowConsumer.
func (e *LostError) Unwrap() error { return ErrSlowConsumer }

// gapNotice reports whether a MSG is the broker's gap notice, and if so how
// many messages it says were lost and why. A count that does not parse
// counts as one: the notice still says messages were lost.
func gapNotice(f *wire.Frame) (lost uint64, reason string, ok bool) {
	if f.Origin.Conn != 0 || len(f.Headers) == 0 {
		return 0, "", false
	}
	count, ok := f.Headers.Get(wire.DroppedHeader)
	if !ok {
		return 0, "", false
	}
	lost, err := strconv.ParseUint(count, 10, 64)
	if err != nil || lost == 0 {
		lost = 1
	}
	reason, _ = f.Headers.Get(wire.ReasonHeader)
	if reason == "" {
		reason = "no reason given"
	}
	return lost, reason, true
}

// noteGap counts a gap notice on every member of the broker subscription
// it came on, and reports it to each.
func (c *Conn) noteGap(members []*Subscription, lost uint64, reason string) {
	for _, s := range members {
		c.dropped.Add(lost)
		total := s.q.addLost(lost)
		c.cb.push(s, &LostError{Pattern: s.pattern, Lost: lost, Total: total, InBroker: true, Reason: reason})
		if s.onLoss != nil {
			s.onLoss()
		}
	}
}

// reportDrops tells the error handler about messages s's queue dropped in
// its last hand-over: on the first drop, then each time the queue's drops
// pass a multiple of 1024, so a consumer that stays behind does not flood
// the handler. dropped is this hand-over's drops, and total the queue's.
// Only the reader calls it.
func (c *Conn) reportDrops(s *Subscription, dropped int, total uint64) {
	if dropped == 0 || total != uint64(dropped) && total/1024 == (total-uint64(dropped))/1024 {
		return
	}
	c.cb.push(s, &LostError{
		Pattern: s.pattern, Lost: total - s.reportedDrops, Total: s.Dropped(),
		Reason: fmt.Sprintf("its queue holds at most %d messages and %d bytes", c.opts.subMsgs, c.opts.subBytes),
	})
	s.reportedDrops = total
}

// lostOne counts a message s lost on the client for a reason other than a
// full queue, and reports it. Only the reader calls it.
func (c *Conn) lostOne(s *Subscription, reason string) {
	s.q.mu.Lock()
	s.q.dropped++
	s.q.mu.Unlock()
	s.reportedDrops++ // reported here, not again with the queue's drops
	c.cb.push(s, &LostError{Pattern: s.pattern, Lost: 1, Total: s.Dropped(), Reason: reason})
}
