package bus

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"unsafe"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// SysPrefix starts the topics the broker owns; clients may subscribe to
// them but not publish.
const SysPrefix = "$SYS."

// publish routes a PUB to every matching subscription. Its descriptors are
// claimed first, so that every error path below closes them.
func (c *conn) publish(f *wire.Frame) error {
	var set *fdSet
	if f.NFDs > 0 {
		fds, err := c.sock.TakeFDs(int(f.NFDs))
		if err != nil {
			return wire.Errorf(wire.CodeMissingFDs, "PUB announces %d descriptors, only %d were received", f.NFDs, c.sock.QueuedFDs())
		}
		set = newFDSet(fds)
		defer set.Release() // the router's reference
	}
	// The topic is looked up straight from the read buffer; the index keeps
	// no reference to it.
	topic := unsafe.String(unsafe.SliceData(f.Topic), len(f.Topic))
	res, ok := c.srv.index.Lookup(topic)
	if !ok {
		return &wire.Error{Code: wire.CodeInvalidTopic, Text: topics.ValidTopic(topic).Error()}
	}
	if strings.HasPrefix(topic, SysPrefix) {
		return wire.Errorf(wire.CodeReservedTopic, "topic %q: topics starting with %q belong to the broker", topic, SysPrefix)
	}
	if len(f.Reply) > 0 {
		if err := topics.ValidTopic(string(f.Reply)); err != nil {
			return &wire.Error{Code: wire.CodeInvalidTopic, Text: "reply " + err.Error()}
		}
		if strings.HasPrefix(string(f.Reply), SysPrefix) {
			return wire.Errorf(wire.CodeReservedTopic, "reply topic %q: topics starting with %q belong to the broker", f.Reply, SysPrefix)
		}
	}
	if len(f.Headers) > 0 {
		if err := f.Headers.Check(); err != nil {
			return err
		}
	}
	c.srv.stats.published.Add(1)
	if strings.HasPrefix(topic, wire.GroupOnlyPrefix) {
		return c.publishGroupOnly(f, topic, res.Groups, set)
	}
	m := outMsg{origin: &c.origin, pub: f}
	if len(res.Plain)+len(res.Groups) > 1 && f.Size() <= encodeOnceMax {
		c.encoded = wire.AppendMsg(c.encoded[:0], 0, m.origin, f)
		m.encoded = c.encoded
	}
	delivered := false
	for _, s := range res.Plain {
		delivered = c.deliver(s, &m, set) || delivered
	}
	for i := range res.Groups {
		delivered = c.deliverToOne(res.Groups[i].Members, &m, set) || delivered
	}
	// Matching only subscriptions that are going away is matching none.
	if !delivered && len(f.Reply) > 0 {
		c.noResponders(f.Reply)
	}
	return nil
}

// publishGroupOnly routes a message on a group-only topic
// (wire.GroupOnlyPrefix): to one member of each queue group among the
// members subscribed to exactly that topic. A pattern with wildcards
// matches no group-only topic, whether plain or in a group: a subscriber
// to ">" must not get a stream's socket, and one that joined group
// "listeners" on ">" must not take the dials of every stream name.
func (c *conn) publishGroupOnly(f *wire.Frame, topic string, groups []topics.Group[*subscription], set *fdSet) error {
	m := outMsg{origin: &c.origin, pub: f}
	delivered := false
	for _, g := range groups {
		var exact []*subscription
		for _, s := range g.Members {
			if s.pattern == topic {
				exact = append(exact, s)
			}
		}
		if len(exact) > 0 {
			delivered = c.deliverToOne(exact, &m, set) || delivered
		}
	}
	if !delivered && len(f.Reply) > 0 {
		c.noResponders(f.Reply)
	}
	return nil
}

// outMsg is a message on its way to its receivers. Its descriptors travel
// beside it: the outboxes keep them, and a struct holding them would take
// the frame it points to to the heap with them.
type outMsg struct {
	origin *wire.Origin
	pub    *wire.Frame
	// encoded is its MSG frame with subscription id 0, when it goes to
	// more than one receiver: encoded once, copied to each with only the
	// id patched. nil: each receiver encodes its own.
	encoded []byte
}

// encodeOnceMax is the largest frame encoded once for several receivers;
// a larger one is cheaper to encode for each than to copy twice.
const encodeOnceMax = 64 << 10

var noRespondersHeaders = wire.AppendField(nil, wire.StatusHeader, wire.StatusNoResponders)

// noResponders tells the requester that nobody got its request: an empty
// MSG with the status header, from the broker itself, to the requester's
// own subscriptions that match the reply topic. Only its own: otherwise a
// client could make the broker send messages in its name to anyone.
func (c *conn) noResponders(reply []byte) {
	res, ok := c.srv.index.Lookup(string(reply))
	if !ok {
		return
	}
	f := wire.Frame{
		Header: wire.Header{Op: wire.OpPub, TopicLen: uint16(len(reply)), HdrLen: uint32(len(noRespondersHeaders))},
		Topic:  reply, Headers: noRespondersHeaders,
	}
	for _, s := range res.Plain {
		if s.c == c {
			c.deliver(s, &outMsg{origin: &c.srv.origin, pub: &f}, nil)
		}
	}
}

// deliver queues m for one subscription and reports whether it was taken.
func (c *conn) deliver(s *subscription, m *outMsg, set *fdSet) bool {
	e := s.c.enqueueMsg(s, m, set)
	if e.wake {
		c.wakes = append(c.wakes, s.c)
	}
	if e.stall && !slices.Contains(c.stalls, s.c) {
		c.stalls = append(c.stalls, s.c)
	}
	if e.taken {
		c.srv.stats.delivered.Add(1)
	}
	return e.taken
}

// deliverToOne gives f to one member of a queue group, chosen uniformly at
// random; if that member's connection is closing, or it has just
// unsubscribed, the next one in turn gets it, so a member leaving loses no
// message for the group. It reports whether a member took f.
func (c *conn) deliverToOne(members []*subscription, m *outMsg, set *fdSet) bool {
	start := rand.IntN(len(members))
	for i := range members {
		if c.deliver(members[(start+i)%len(members)], m, set) {
			return true
		}
	}
	return false
}

// subscribe adds a subscription for SUB.
func (c *conn) subscribe(f *wire.Frame) error {
	if _, dup := c.subs[f.ID]; dup {
		return wire.Errorf(wire.CodeDuplicateSub, "subscription id %d is already in use", f.ID)
	}
	if len(c.subs) >= c.srv.cfg.MaxSubs {
		return wire.Errorf(wire.CodeTooManySubs, "this connection has %d subscriptions, the limit", len(c.subs))
	}
	s := &subscription{c: c, sid: f.ID, pattern: string(f.Topic), group: string(f.Reply)}
	if err := c.srv.index.Add(s.pattern, s.group, s); err != nil {
		code := wire.CodeInvalidPattern
		var te *topics.Error
		if errors.As(err, &te) && te.Kind == "group" {
			code = wire.CodeInvalidGroup
		}
		return &wire.Error{Code: code, Text: err.Error()}
	}
	c.subs[f.ID] = s
	return nil
}

// unsubscribe removes a subscription for UNSUB.
func (c *conn) unsubscribe(f *wire.Frame) error {
	s, ok := c.subs[f.ID]
	if !ok {
		return wire.Errorf(wire.CodeUnknownSub, "no subscription with id %d", f.ID)
	}
	delete(c.subs, f.ID)
	err := c.srv.index.Remove(s.pattern, s.group, s)
	c.mu.Lock()
	s.removed = true
	c.mu.Unlock()
	return err
}
