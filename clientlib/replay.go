package clientlib

import (
	"fmt"
	"slices"

	"github.com/busd/busd/bus/wire"
)

// Messages published while reconnecting. The broker they were meant for
// is gone, and the subscribers of the one they go to come back at their
// own pace: a message sent as soon as this Conn is back may find nobody
// yet. So each PUB buffered while reconnecting asks the broker for a
// RECEIPT (its id is a number of ours), and the Conn keeps a copy of the
// message until the receipt comes. One that reached no subscription, or
// whose connection ended before its receipt came, goes to the error
// handler as an *UndeliveredError carrying the message, so that none is
// lost without a word: the caller may publish it again. The copies are
// bounded as the buffer is (WithReconnectBuffer), and are gone once the
// receipts have come, a moment after the reconnect.

// UndeliveredError reports a message published while the Conn was
// reconnecting that did not reach anyone, or may not have. It goes to the
// error handler (WithErrorHandler), with a nil Subscription.
type UndeliveredError struct {
	// Msg is the message as published: Topic, Reply, Header and Data. Its
	// Files are not kept (they went to the broker, which closed them).
	Msg *Msg
	// Dropped is how many subscriptions matched it but had no room for
	// it (they get a gap notice); 0 when none matched.
	Dropped int
	// Err is the cause: ErrNotDelivered (the broker's receipt said so; if
	// the broker refused the message, its *ServerError reached the
	// handler just before); ErrConnectionLost (the connection dropped
	// again before the receipt came: it may or may not have been
	// delivered); or the error that ended the Conn first (ErrClosed after
	// Close).
	Err error
}

// Error says which message and why.
func (e *UndeliveredError) Error() string {
	how := "not delivered"
	if e.Err != ErrNotDelivered {
		how = "not confirmed"
	}
	extra := ""
	if e.Dropped > 0 {
		extra = fmt.Sprintf(" (%d subscriptions had no room for it)", e.Dropped)
	}
	return fmt.Sprintf("bus: message to %q published while reconnecting: %s: %v%s", e.Msg.Topic, how, e.Err, extra)
}

// Unwrap returns the cause, so that errors.Is(err, ErrNotDelivered) and
// errors.Is(err, ErrConnectionLost) tell the two apart.
func (e *UndeliveredError) Unwrap() error { return e.Err }

// replayed is the copy of a buffered message kept until its receipt.
type replayed struct {
	topic, reply string
	hdrs         wire.Headers
	data         []byte
}

// recordReplayLocked keeps a copy of a message being buffered and returns
// the id its PUB carries to ask for a receipt. Under c.mu.
func (c *Conn) recordReplayLocked(topic, reply string, hdrs wire.Headers, data []byte) uint32 {
	if c.replays == nil {
		c.replays = map[uint32]*replayed{}
	}
	c.nextReplay++
	if c.nextReplay == 0 {
		c.nextReplay = 1 // 0 asks for no receipt
	}
	c.replays[c.nextReplay] = &replayed{
		topic: topic, reply: reply,
		hdrs: slices.Clone(hdrs), data: slices.Clone(data),
	}
	return c.nextReplay
}

// receipt handles the broker's RECEIPT for the PUB with id id.
func (c *Conn) receipt(id uint32, payload []byte) error {
	r, err := wire.DecodeReceipt(payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	rp := c.replays[id]
	delete(c.replays, id)
	c.mu.Unlock()
	if rp == nil || r.Delivered > 0 {
		return nil // delivered; or an id this Conn never gave, which it ignores
	}
	c.cb.push(nil, rp.report(ErrNotDelivered, int(r.Dropped)))
	return nil
}

// forgetReplaysLocked reports every message still waiting for its receipt
// as not confirmed, with cause: the connection they went out on is gone.
// Under c.mu.
func (c *Conn) forgetReplaysLocked(cause error) {
	if len(c.replays) == 0 {
		return
	}
	ids := make([]uint32, 0, len(c.replays))
	for id := range c.replays {
		ids = append(ids, id)
	}
	slices.Sort(ids) // in the order published (ids wrap after 4 billion; the order then is only approximate)
	for _, id := range ids {
		c.cb.push(nil, c.replays[id].report(cause, 0))
	}
	clear(c.replays)
}

// report turns rp into the error the handler gets.
func (rp *replayed) report(cause error, dropped int) *UndeliveredError {
	m := &Msg{Topic: rp.topic, Reply: rp.reply, Header: decodeHeader(rp.hdrs), Data: rp.data}
	return &UndeliveredError{Msg: m, Dropped: dropped, Err: cause}
}
