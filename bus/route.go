package bus

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// SysPrefix starts the topics the broker owns; clients may subscribe to
// them, and publish only broker requests (wire.SysReqPrefix, sysreq.go).
const SysPrefix = "$SYS."

// publish routes a PUB to every matching subscription.
func (c *conn) publish(f *wire.Frame) error {
	// The Reader's frame must not keep a large frame's pieces until its
	// next frame: once routed they are the queues' (m.body), or garbage
	// when the last reference goes, and the reclaimer is told so then;
	// refused, garbage now.
	switch {
	case f.NFDs > 0:
		err := c.publishFDs(f)
		f.Body = nil
		return err
	case f.Body != nil:
		err := c.route(f, nil)
		f.Body = nil
		c.releaseInput() // the pieces are the receivers' queues' now, and charged to them
		return err
	}
	return c.route(f, nil)
}

// publishFDs routes a PUB that carries descriptors. They are claimed
// first, so that every error path closes them.
func (c *conn) publishFDs(f *wire.Frame) error {
	fds, err := c.sock.TakeFDs(int(f.NFDs))
	if err != nil {
		return wire.Errorf(wire.CodeMissingFDs, "PUB announces %d descriptors, only %d were received", f.NFDs, c.sock.QueuedFDs())
	}
	// The receivers' queues pay for them from here; the broker's
	// descriptor pool until they are closed.
	c.srv.led.handOver(c.acct, kInputFDs, int64(len(fds)))
	c.srv.stats.fdsPassed.Add(uint64(len(fds)))
	c.sentFDs = true
	set := newFDSet(c.srv, c.acct, fds)
	defer func() {
		set.unhold()  // the publisher's charge for a payload in a memfd ends here
		set.Release() // the router's reference
	}()
	defer c.releaseInput()
	if err := c.srv.refuseOwnSockets(fds); err != nil {
		return err
	}
	if f.Flags&wire.PubPayloadFD != 0 {
		if err := c.checkPayloadFD(f, set); err != nil { // payload.go
			c.srv.stats.badPayloads.Add(1)
			return err
		}
	}
	return c.route(f, set)
}

// route delivers a PUB, with its descriptors if set is not nil.
func (c *conn) route(f *wire.Frame, set *fdSet) error {
	if f.Body != nil {
		// Read in many batches, a large frame brings the stall budget of
		// each to the waits for its receivers.
		c.stallLeft += c.srv.cfg.StallBudget * time.Duration(f.Size()>>20)
	}
	// The topic is looked up straight from the read buffer; the index keeps
	// no reference to it.
	topic := unsafe.String(unsafe.SliceData(f.Topic), len(f.Topic))
	res, ok := c.srv.index.Lookup(topic)
	if !ok {
		return &wire.Error{Code: wire.CodeInvalidTopic, Text: topics.ValidTopic(topic).Error()}
	}
	retain := f.Flags&wire.PubRetain != 0
	if retain {
		if err := c.checkRetain(f, topic); err != nil { // retain.go
			return err
		}
	}
	if strings.HasPrefix(topic, SysPrefix) {
		return c.sysPublish(f, topic) // a broker request, or refused: sysreq.go
	}
	if err := checkReplyAndHeaders(f); err != nil {
		return err
	}
	// Last of the checks: a reply uses up its permit here.
	private, err := c.checkPublish(topic, f.Reply)
	if err != nil {
		return err
	}
	var retainSeq uint64
	if retain {
		if retainSeq, err = c.storeRetained(f, topic); err != nil {
			return err
		}
		f.Flags &^= wire.PubRetain // delivered live as a plain MSG
		// Looked up again, after the store: a retained-first SUB whose
		// snapshot missed this value is in the index by now.
		res, _ = c.srv.index.Lookup(topic)
	}
	c.srv.stats.published.Add(1)
	c.nIn++
	var m outMsg
	c.initOutMsg(&m, f, takers(res))
	m.private = private
	m.retainSeq = retainSeq
	m.replyInbox = inboxOf(unsafe.String(unsafe.SliceData(f.Reply), len(f.Reply)))
	if f.Body != nil {
		m.body = newLargeBody(c.srv.led, f.Body) // publish takes them off f once routed
	}
	if strings.HasPrefix(topic, wire.NamePrefix) && c.routeNamed(f, &m, topic, set) {
		if m.body != nil {
			m.body.Release()
		}
		return nil // held for an activation, or refused (nameroute.go)
	}
	var o outcome
	switch {
	case m.named && m.owner == nil:
		o = gone // nobody owns the name
	case strings.HasPrefix(topic, wire.GroupOnlyPrefix):
		o = c.routeGroupOnly(&m, topic, res.Groups, set)
	default:
		for _, s := range res.Plain {
			o = max(o, c.tally(c.deliver(s, &m, set)))
		}
		for i := range res.Groups {
			o = max(o, c.tally(c.deliverToOne(res.Groups[i].Members, &m, set)))
		}
	}
	// After the receivers, and outside o: a monitor changes nothing about
	// where the message goes (monitor.go).
	if c.srv.nMonitors.Load() > 0 {
		if mons, _ := c.srv.monitors.Lookup(topic); len(mons.Plain) > 0 {
			c.toMonitors(mons.Plain, &m, set)
		}
	}
	// Before the router lets go of a large frame's pieces: its reply topic
	// is in the first, which nobody else holds when nobody took the frame.
	if len(f.Reply) > 0 && o != queued {
		c.noResponders(f.Reply, o)
	}
	if m.body != nil {
		m.body.Release() // the router's reference
	}
	return nil
}

// tally counts o in what the PUB's RECEIPT will say, and returns it.
func (c *conn) tally(o outcome) outcome {
	switch o {
	case queued:
		c.routed.Delivered++
	case dropped, unfit:
		c.routed.Dropped++
	}
	return o
}

// routeGroupOnly routes a message on a group-only topic
// (wire.GroupOnlyPrefix): to one member of each queue group among the
// members subscribed to exactly that topic. A pattern with wildcards
// matches no group-only topic, whether plain or in a group: a subscriber
// to ">" must not get a stream's socket, and one that joined group
// "listeners" on ">" must not take the dials of every stream name.
func (c *conn) routeGroupOnly(m *outMsg, topic string, groups []topics.Group[*subscription], set *fdSet) outcome {
	var o outcome
	for _, g := range groups {
		var exact []*subscription
		for _, s := range g.Members {
			if s.pattern == topic {
				exact = append(exact, s)
			}
		}
		if len(exact) > 0 {
			o = max(o, c.tally(c.deliverToOne(exact, m, set)))
		}
	}
	return o
}

// checkReplyAndHeaders checks a PUB's reply topic, which must be a topic
// not starting with SysPrefix, and its headers.
func checkReplyAndHeaders(f *wire.Frame) error {
	if len(f.Reply) > 0 {
		// Straight from the read buffer, as the topic: the error's text is
		// a copy.
		reply := unsafe.String(unsafe.SliceData(f.Reply), len(f.Reply))
		if err := topics.ValidTopic(reply); err != nil {
			return &wire.Error{Code: wire.CodeInvalidTopic, Text: "reply " + err.Error()}
		}
		if strings.HasPrefix(reply, SysPrefix) {
			return wire.Errorf(wire.CodeReservedTopic, "reply topic %q: topics starting with %q belong to the broker", f.Reply, SysPrefix)
		}
	}
	if len(f.Headers) > 0 {
		return f.Headers.Check()
	}
	return nil
}

// outMsg is a message on its way to its receivers. Its descriptors travel
// beside it: the outboxes keep them, and a struct holding them would take
// the frame it points to to the heap with them.
type outMsg struct {
	origin *wire.Origin
	pub    *wire.Frame
	body   *largeBody // pub.Body's pieces, for a large one
	size   int        // of the MSG frame
	nfds   int
	// encoded is its MSG frame with subscription id 0, when it goes to
	// more than one receiver: encoded once, copied to each with only the
	// id patched. nil: each receiver encodes its own.
	encoded []byte
	// private is the inbox the topic is in, if it is one: only that
	// connection (and monitors) may receive it.
	private string
	// replyInbox is the inbox the reply topic is in, if it is one: each
	// receiver but its owner gets a permit to answer (permits.go).
	replyInbox string
	// own says it is the broker's answer to the connection routing it
	// (toOwn): not a message for subscribers, so not counted in Delivered.
	own bool
	// dropsEvent says it is a drops event, whose loss is reported in a
	// gap notice but in no drops event (dropevents.go).
	dropsEvent bool
	// retainSeq is the store's number for a retained PUB, 0 for any
	// other message (retain.go).
	retainSeq uint64
	// named says the topic is a name's ("_NAME."): only owner's
	// subscriptions (and monitors) may receive it (nameroute.go).
	named bool
	owner *conn
}

// encodeOnceMax is the largest frame encoded once for several receivers;
// a larger one is cheaper to encode for each than to copy twice.
const encodeOnceMax = 64 << 10

// takers returns how many receivers a Result may deliver to, not counting
// the (few) plain subscribers whose connections take nothing now: encoding
// a message once for several receivers costs a copy more than encoding it
// for one, so a stopped subscriber must not make its publisher pay that.
func takers(res *topics.Result[*subscription]) int {
	n := len(res.Plain) + len(res.Groups)
	if n > 1 && len(res.Plain) <= 8 {
		for _, s := range res.Plain {
			if s.c.full.Load() {
				n--
			}
		}
	}
	return n
}

// initOutMsg sets m up to deliver f to receivers receivers.
func (c *conn) initOutMsg(m *outMsg, f *wire.Frame, receivers int) {
	m.origin, m.pub = &c.origin, f
	m.size = wire.MsgHeadLen + f.Size() - wire.HeaderLen
	m.nfds = int(f.NFDs)
	if receivers > 1 && f.Body == nil && m.size <= encodeOnceMax {
		c.encoded = wire.AppendMsg(c.encoded[:0], 0, m.origin, f)
		m.encoded = c.encoded
	}
}

var (
	noRespondersHeaders = wire.AppendField(nil, wire.StatusHeader, wire.StatusNoResponders)
	droppedHeaders      = wire.AppendField(nil, wire.StatusHeader, wire.StatusDropped)
	unfitHeaders        = wire.AppendField(wire.AppendField(nil, wire.StatusHeader, wire.StatusNoResponders),
		wire.ReasonHeader, "no subscriber takes payloads in memfds (fd_payloads)")
)

// noResponders tells the requester that nobody got its request: an empty
// MSG with a status header, from the broker itself, to the requester's own
// subscriptions that match the reply topic (toOwn), so that a requester
// whose inbox is a queue group member does not wait out its timeout
// either. Only its own: otherwise a client could make the broker send
// messages in its name to anyone. The status says whether nobody
// subscribes (503), nobody who does takes such a message (503, with why:
// o is unfit), or everyone who does was too far behind to take it (429:
// trying again later may work).
func (c *conn) noResponders(reply []byte, o outcome) {
	hdrs := noRespondersHeaders
	switch o {
	case unfit:
		hdrs = unfitHeaders
	case full, dropped:
		hdrs = droppedHeaders
	}
	c.toOwn(reply, hdrs, nil, nil)
}

// toOwn delivers a MSG from the broker, on topic reply, to c's own
// subscriptions that match it: each plain one, and one of c's own members
// of each queue group (as any message to a group goes to one member).
// set is its descriptors, nil for none.
func (c *conn) toOwn(reply []byte, hdrs wire.Headers, payload []byte, set *fdSet) {
	res, ok := c.srv.index.Lookup(unsafe.String(unsafe.SliceData(reply), len(reply)))
	if !ok {
		return
	}
	f := wire.Frame{
		Header: wire.Header{Op: wire.OpPub, TopicLen: uint16(len(reply)), HdrLen: uint32(len(hdrs)), PayloadLen: uint32(len(payload))},
		Topic:  reply, Headers: hdrs, Payload: payload,
	}
	if set != nil {
		f.NFDs = uint8(len(set.fds))
	}
	var m outMsg
	c.initOutMsg(&m, &f, 1)
	m.origin = &c.srv.origin
	m.own = true
	for _, s := range res.Plain {
		if s.c == c {
			c.deliver(s, &m, set)
		}
	}
	var own []*subscription
	for _, g := range res.Groups {
		own = own[:0]
		for _, s := range g.Members {
			if s.c == c {
				own = append(own, s)
			}
		}
		if len(own) > 0 {
			c.deliverToOne(own, &m, set)
		}
	}
}

// deliver queues m for one subscription: at once if its connection has
// room, else after waiting for room within the publisher's stall budget
// (unless the connection is lagging), else the subscription's slow-consumer
// policy applies.
func (c *conn) deliver(s *subscription, m *outMsg, set *fdSet) outcome {
	o := c.offer(s, m, set, unlessWait)
	if o != full {
		return o
	}
	c.waitForRoom(s.c, m)
	return c.offer(s, m, set, final)
}

// offer queues m for s if its connection has room for it now; mode says
// what happens if not.
func (c *conn) offer(s *subscription, m *outMsg, set *fdSet, mode enqueueMode) outcome {
	if !s.admits(m) {
		return gone
	}
	if mode != tryOnly && c.dropFast(s) {
		return dropped
	}
	if c.dropSub == s {
		c.flushDrops()
	}
	r := s.c
	o, wake, behind := r.enqueueMsg(s, m, set, mode)
	if wake {
		c.wakes = append(c.wakes, r)
	}
	if behind && !slices.Contains(c.stalls, r) {
		c.stalls = append(c.stalls, r)
	}
	if o == queued && !m.own {
		c.srv.stats.delivered.Add(1)
	}
	return o
}

// deliverToOne gives m to one member of a queue group: one chosen
// uniformly at random if it has room, else the next in turn that has; if
// a member's connection is closing, or it has just unsubscribed, the next
// one gets it too, so a member leaving loses no message for the group.
// Only when no member has room does the publisher wait, for the first
// that had none, and then that member's policy applies.
func (c *conn) deliverToOne(members []*subscription, m *outMsg, set *fdSet) outcome {
	start := rand.IntN(len(members))
	var first *subscription
	for i := range members {
		s := members[(start+i)%len(members)]
		switch c.offer(s, m, set, tryOnly) {
		case queued:
			return queued
		case full:
			if first == nil {
				first = s
			}
		}
	}
	if first == nil {
		return gone
	}
	return c.deliver(first, m, set)
}
