package bus

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// Retained values (docs/PROTOCOL.md section 3.5). A PUB with
// wire.PubRetain is kept as its topic's current value, replacing the one
// before, and routed live as usual; one with an empty payload clears the
// value. A SUB with wire.SubRetained gets, before anything else on that
// subscription, the values of the topics its pattern matches (MSGs with
// wire.MsgRetained), then the live messages, with no gap and no
// duplicate between the two:
//
//   - the store's lock (retainStore.mu) is held by a retained PUB only to
//     replace the value and number it (seq), before the router looks its
//     topic up in the index; and by a SubRetained SUB across taking its
//     snapshot, queueing it, and putting the subscription in the index.
//     So a retained PUB numbered after the snapshot finds the
//     subscription in the index, and one numbered before is in the
//     snapshot or was replaced there by a later one;
//   - a live retained message numbered up to the snapshot's sequence
//     (subscription.snapSeq) is not delivered to the subscription: it was
//     in the snapshot, or is older than what was;
//   - the snapshot is queued before the subscription enters the index, so
//     no live message can be queued ahead of it.
//
// Each value is charged to the uid that published it last, in its
// retained values and retained bytes budgets (and its share of the
// broker's memory); replacing a value moves the charge; clearing it, or
// the broker stopping, ends it. A value outlives its publisher's
// connection.

// retainedOverhead is what a retained value is charged beyond its bytes:
// the entry and its place in the store's map.
const retainedOverhead = 256

// retainStore is the broker's retained values, by topic.
type retainStore struct {
	mu     sync.Mutex
	seq    uint64 // retained PUBs (and clears) numbered so far
	values map[string]*retained
}

// retained is one topic's value.
type retained struct {
	// frame is the MSG that delivers it, encoded with subscription id 0
	// and wire.MsgRetained; pub's sections point into it.
	frame  []byte
	pub    wire.Frame
	origin wire.Origin
	acct   *account // who pays for it: the publisher's user
	cost   int64    // charged to acct's retained bytes
	since  time.Time
}

// retainCost is what a retained value of these sections is charged.
func retainCost(topic, hdrs, payload int) int64 {
	return int64(topic+hdrs+payload) + retainedOverhead
}

// retainRefused is the ERR refusing a retained PUB.
func retainRefused(format string, args ...any) *wire.Error {
	return wire.Errorf(wire.CodeRetainRefused, format, args...)
}

// checkRetain refuses a retained PUB the broker will not keep, before the
// PUB uses a reply permit or is routed: a refused PUB is not delivered
// either, so that live and late subscribers never disagree on a value.
func (c *conn) checkRetain(f *wire.Frame, topic string) error {
	switch {
	case strings.HasPrefix(topic, SysPrefix):
		return retainRefused("topic %q: topics starting with %q keep no retained value", topic, SysPrefix)
	case f.NFDs > 0:
		return retainRefused("topic %q: a retained message carries no descriptors (this one has %d); the PUB was not delivered", topic, f.NFDs)
	case len(f.Reply) > 0:
		return retainRefused("topic %q: a retained message has no reply topic; the PUB was not delivered", topic)
	case strings.HasPrefix(topic, wire.InboxPrefix) || strings.HasPrefix(topic, wire.GroupOnlyPrefix) ||
		strings.HasPrefix(topic, wire.NamePrefix):
		// A name's topics reach only its owner (nameroute.go): a value
		// there would go to every retained-first subscription.
		return retainRefused("topic %q: topics under %q, %q and %q keep no retained value; the PUB was not delivered",
			topic, wire.InboxPrefix, wire.GroupOnlyPrefix, wire.NamePrefix)
	}
	if n := int(f.TopicLen) + int(f.HdrLen) + int(f.PayloadLen); n > c.srv.cfg.MaxRetained {
		return retainRefused("topic %q: a retained value of %d bytes (topic, headers and payload); max_retained is %d; the PUB was not delivered",
			topic, n, c.srv.cfg.MaxRetained)
	}
	return nil
}

// storeRetained makes f the retained value of topic, or clears it if f's
// payload is empty, and returns the number the store gave the change. A
// refused charge is an ERR retain refused naming the budget: nothing was
// stored, and the PUB is not delivered.
func (c *conn) storeRetained(f *wire.Frame, topic string) (uint64, error) {
	st := &c.srv.store
	led := c.srv.led
	var v *retained
	if f.PayloadLen > 0 {
		v = c.newRetained(f)
	}
	if h := c.srv.cfg.hooks; h != nil && h.retainStep != nil {
		h.retainStep(false)
		defer h.retainStep(true)
	}
	st.mu.Lock()
	old := st.values[topic]
	switch {
	case v == nil && old == nil:
	case v == nil:
		delete(st.values, topic)
		old.uncharge(led)
	default:
		if err := chargeRetained(led, v, old); err != nil {
			st.mu.Unlock()
			c.budgetHit("retained value refused over budget", err) // an event: not under the store's lock
			return 0, retainRefused("topic %q: %v; the PUB was not delivered", topic, err)
		}
		if st.values == nil {
			st.values = map[string]*retained{}
		}
		st.values[topicString(&v.pub)] = v
	}
	st.seq++
	seq := st.seq
	st.mu.Unlock()
	return seq, nil
}

// newRetained copies f's topic, headers and payload into a new value,
// from the reader's buffer or the pieces of a large frame.
func (c *conn) newRetained(f *wire.Frame) *retained {
	pub := wire.Frame{
		Header: wire.Header{Op: wire.OpPub, Flags: wire.MsgRetained, TopicLen: f.TopicLen, HdrLen: f.HdrLen, PayloadLen: f.PayloadLen},
		Topic:  f.Topic, Headers: f.Headers, Payload: f.Payload,
	}
	if f.Body != nil {
		pub.Payload = largePayload(f, f.Body)
	}
	v := &retained{origin: c.origin, acct: c.acct, since: time.Now(),
		cost: retainCost(int(f.TopicLen), int(f.HdrLen), int(f.PayloadLen))}
	v.frame = wire.AppendMsg(nil, 0, &v.origin, &pub)
	// The sections, in the frame: the value keeps nothing of f.
	p := wire.MsgHeadLen
	v.pub.Header = pub.Header
	v.pub.Topic = v.frame[p : p+len(pub.Topic) : p+len(pub.Topic)]
	p += len(pub.Topic)
	v.pub.Headers = wire.Headers(v.frame[p : p+len(pub.Headers) : p+len(pub.Headers)])
	p += len(pub.Headers)
	v.pub.Payload = v.frame[p:]
	return v
}

// chargeRetained charges v to its publisher's user, and ends old's charge
// (nil: the topic had no value): only the difference when both are the
// same user's, so that replacing a value never fails for want of room for
// both. It refuses with a *budgetError and charges nothing.
func chargeRetained(led *ledger, v, old *retained) error {
	if old != nil && old.acct == v.acct {
		if d := v.cost - old.cost; d > 0 {
			return led.charge(v.acct, kRetainedBytes, d)
		}
		led.uncharge(v.acct, kRetainedBytes, old.cost-v.cost)
		return nil
	}
	if err := led.charge(v.acct, kRetained, 1); err != nil {
		return err
	}
	if err := led.charge(v.acct, kRetainedBytes, v.cost); err != nil {
		led.uncharge(v.acct, kRetained, 1)
		return err
	}
	if old != nil {
		old.uncharge(led)
	}
	return nil
}

// uncharge ends v's charge.
func (v *retained) uncharge(led *ledger) {
	led.uncharge(v.acct, kRetained, 1)
	led.uncharge(v.acct, kRetainedBytes, v.cost)
}

// seenInSnapshot reports whether s's snapshot held m, or a value that
// replaced it: m is a live retained publish numbered up to it.
func (s *subscription) seenInSnapshot(m *outMsg) bool {
	return m.retainSeq != 0 && m.retainSeq <= s.snapSeq
}

// addToIndex puts s in its index; a SubRetained subscription gets its
// snapshot first, atomically with respect to retained PUBs (see the top
// of this file).
func (c *conn) addToIndex(s *subscription) error {
	if s.flags&wire.SubRetained == 0 {
		return c.srv.indexAdd(s)
	}
	st := &c.srv.store
	st.mu.Lock()
	defer st.mu.Unlock()
	s.snapSeq = st.seq
	for _, v := range st.matching(s.pattern) {
		c.offerRetained(s, v)
	}
	return c.srv.indexAdd(s)
}

// matching returns the values of the topics pattern matches, sorted by
// topic. Under st.mu.
func (st *retainStore) matching(pattern string) []*retained {
	if topics.IsLiteral(pattern) {
		if v := st.values[pattern]; v != nil {
			return []*retained{v}
		}
		return nil
	}
	var vs []*retained
	for topic, v := range st.values {
		if topics.Match(pattern, topic) {
			vs = append(vs, v)
		}
	}
	slices.SortFunc(vs, func(a, b *retained) int { return strings.Compare(topicString(&a.pub), topicString(&b.pub)) })
	return vs
}

// offerRetained queues v for s, c's own subscription being made, if the
// policy lets s have it: at once, or not at all (the subscription's
// policy applies: the reader of the SUB cannot wait for its own writer
// while it holds the store).
func (c *conn) offerRetained(s *subscription, v *retained) {
	m := outMsg{origin: &v.origin, pub: &v.pub, size: len(v.frame), encoded: v.frame}
	if m.size > encodeOnceMax {
		m.encoded = nil // enqueueMsg copies it in chunks
	}
	if !s.admits(&m) {
		return
	}
	mode := final
	if s.isMonitor() {
		mode = passive
	}
	o, wake, _ := c.enqueueMsg(s, &m, nil, mode)
	if wake && !slices.Contains(c.wakes, c) {
		c.wakes = append(c.wakes, c)
	}
	if o == queued {
		c.srv.stats.delivered.Add(1)
	}
}

// checkRetainedSub refuses what a SubRetained SUB cannot be: one in a
// queue group, whose members share the live messages but would each get
// the snapshot.
func checkRetainedSub(f *wire.Frame) error {
	if f.Flags&wire.SubRetained != 0 && len(f.Reply) > 0 {
		return wire.Errorf(wire.CodeInvalidGroup, "a subscription with retained values first (flag %#x) joins no queue group (got %q)", wire.SubRetained, f.Reply)
	}
	return nil
}

// answerRetained answers "$SYS.req.retained": the retained topics the
// asker may receive, sorted, with their sizes and publishers.
func (c *conn) answerRetained(payload []byte) sysAnswer {
	req, err := wire.DecodeListRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	limit := int(min(req.Limit, wire.MaxListLimit))
	if limit == 0 {
		limit = wire.MaxListLimit
	}
	sub := c.subject.Load()
	st := &c.srv.store
	// A stored value never changes (a new one replaces it), so only the
	// pointers are taken under the store's lock: the sort and the policy's
	// decisions, which any uid may ask for in a loop, hold up no retained
	// publish.
	st.mu.Lock()
	vs := make([]*retained, 0, len(st.values))
	for _, v := range st.values {
		vs = append(vs, v)
	}
	st.mu.Unlock()
	slices.SortFunc(vs, func(a, b *retained) int { return strings.Compare(topicString(&a.pub), topicString(&b.pub)) })
	list := wire.RetainedList{Retained: []wire.RetainedValue{}}
	for _, v := range vs {
		topic := topicString(&v.pub)
		if !sub.Everything(policy.Subscribe) && !sub.Decide(policy.Subscribe, topic).Allow {
			continue
		}
		list.Total++
		if len(list.Retained) == limit {
			list.Truncated = true
			continue
		}
		list.Retained = append(list.Retained, wire.RetainedValue{
			Topic: topic, Size: uint64(v.pub.HdrLen) + uint64(v.pub.PayloadLen),
			ConnID: v.origin.Conn, PID: v.origin.PID, UID: v.origin.UID, GID: v.origin.GID,
			Since: uint64(v.since.UnixNano()),
		})
	}
	return sysAnswer{payload: fitEntries(c, list, list.Retained, list.Truncated, func(l *wire.RetainedList, e []wire.RetainedValue, cut bool) { l.Retained, l.Truncated = e, cut })}
}

// topicString is f's topic as a string sharing its bytes.
func topicString(f *wire.Frame) string {
	return unsafe.String(unsafe.SliceData(f.Topic), len(f.Topic))
}
