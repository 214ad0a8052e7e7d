package clientlib

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/busd/busd/bus/wire"
)

// Retained values (docs/PROTOCOL.md section 3.5). A message published
// with PublishRetained is kept by the broker as its topic's current value,
// and delivered live as any other; a subscription made WithRetained gets
// the current values of the topics it matches first, then the live
// messages, with no gap and no duplicate between the two.

// PublishRetained publishes data to topic and asks the broker to keep it
// as the topic's retained value, replacing the one before: subscriptions
// made WithRetained, now or later, get it first (until a later retained
// publish replaces it). Empty data clears the topic's value (the empty
// message is delivered live too). It waits like Publish.
//
// The broker keeps values bounded: one value (topic, header and data) of
// at most its max_retained (64 KiB by default), and per user a number of
// values and bytes, charged to the user that published each value last.
// A value it will not keep is refused with an error matching
// ErrRetainRefused, reported as for any refused PUB (to the error handler,
// and by LastRefusal), and the message is not delivered either. A
// retained message carries no files and no reply topic.
//
// While the connection is reconnecting the message is kept, as any
// publish, and retained once the connection is back.
func (c *Conn) PublishRetained(topic string, data []byte) error {
	return c.publish(context.Background(), topic, "", nil, data, nil, nil, false, nil, wire.PubRetain)
}

// PublishRetainedMsg is PublishRetained with a whole message: its topic,
// header and data. It must have no Reply and no Files.
func (c *Conn) PublishRetainedMsg(m *Msg) error {
	if m.Reply != "" || len(m.Files) > 0 {
		return errRetainedMsg
	}
	var hdrs wire.Headers
	if len(m.Header) > 0 {
		var err error
		if hdrs, err = encodeHeader(nil, m.Header); err != nil {
			return err
		}
	}
	return c.publish(context.Background(), m.Topic, "", hdrs, m.Data, nil, m.PayloadFile, false, nil, wire.PubRetain)
}

// ErrRetainRefused matches the broker's refusal of a retained publish
// (ERR retain refused): descriptors, a reply topic, a value over
// max_retained, a topic that keeps no value, or the user's retained
// budget; the error's text says which.
var ErrRetainRefused error = wire.CodeRetainRefused

var errRetainedMsg = errors.New("bus: a retained message has no reply topic and no files")

// WithRetained makes the subscription get, before any other message, the
// values the broker retains for the topics its pattern matches (those the
// broker's policy lets it receive), sorted by topic, each with Retained
// true; then the live messages, from the first published after those
// values were taken: none missing, none twice. A subscription
// WithRetained shares no subscription at the broker with any other, so
// each gets the values; it joins no queue group.
//
// After a reconnect the subscription is made again at the broker, and gets
// the values current then, again: what it has seen may have changed
// while it was away, and the values say where things stand now.
func WithRetained() SubOption {
	return func(c *subConfig) { c.flags |= wire.SubRetained }
}

var errRetainedGroup = errors.New("bus: a subscription WithRetained joins no queue group")

// Retained reports whether m is a retained value from the broker's store,
// delivered to a subscription made WithRetained before its live messages,
// rather than a live publish.
func (m *Msg) Retained() bool { return m.retained }

// retainedKeys numbers subscriptions WithRetained, which share nothing.
var retainedKeys atomic.Uint64

// keyFor returns the key of the broker subscription a new Subscription
// with these may share: its own, for one WithRetained.
func (c *Conn) keyFor(pattern, group string, flags uint8) subKey {
	k := subKey{pattern: pattern, group: group, flags: flags}
	if flags&wire.SubRetained != 0 {
		k.unique = retainedKeys.Add(1)
	}
	return k
}

// checkRetainedSub refuses what the broker would.
func checkRetainedSub(group string, flags uint8) error {
	if flags&wire.SubRetained != 0 && group != "" {
		return fmt.Errorf("%w (group %q)", errRetainedGroup, group)
	}
	return nil
}

// RetainedValue describes one value the broker retains (see
// PublishRetained): its topic, the bytes of its header and data, who
// published it, and when.
type RetainedValue struct {
	Topic  string
	Size   int
	Origin Origin // the connection that published it; it may have closed since
	Since  time.Time
}

// BrokerRetained asks the broker which values it retains
// ("$SYS.req.retained"): those of the topics this connection may receive,
// sorted by topic. The broker lists at most wire.MaxListLimit of them:
// total says how many there are. Every user may ask by default; a broker
// that predates retained values answers ErrNoResponders.
func (c *Conn) BrokerRetained(ctx context.Context) (values []RetainedValue, total int, err error) {
	var list wire.RetainedList
	if err := c.brokerAnswer(ctx, wire.SysReqRetained, nil, &list); err != nil {
		return nil, 0, err
	}
	values = make([]RetainedValue, len(list.Retained))
	for i, v := range list.Retained {
		values[i] = RetainedValue{
			Topic: v.Topic, Size: int(v.Size),
			Origin: Origin{Conn: v.ConnID, PID: int(v.PID), UID: int(v.UID), GID: int(v.GID)},
			Since:  time.Unix(0, int64(v.Since)),
		}
	}
	return values, int(list.Total), nil
}
