package bus

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"unsafe"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// Broker events (wire.SysConnUp and the others): the broker publishes them
// from connection 0, as it answers requests, to every subscription the
// event's topic matches and the policy lets have it. They are offered once
// and never waited for: a subscriber with no room loses the event under
// its own slow-consumer policy (a gap notice, or a disconnect if it asked
// for one), so a watcher that does not read stalls neither the connection
// the event is about nor anyone else.
//
// Events go only to subscriptions whose pattern starts with "$SYS.": one
// to ">" or "*.conn.>" asked for the clients' traffic, and neither it nor
// a queue group on it gets the broker's events among them (as a wildcard
// gets no stream's dials). The same holds for monitors: one to "$SYS.>"
// sees the events the policy lets it, passively (dropped at once if its
// connection has no room), and one to ">" sees none.
//
// Nothing is encoded while no subscription could receive an event: the
// server counts the subscriptions whose pattern starts with "$SYS."
// (watchers), and an event is not even looked up while there are none.

// watchesEvents reports whether a subscription to pattern receives broker
// events (those its pattern matches).
func watchesEvents(pattern string) bool { return strings.HasPrefix(pattern, SysPrefix) }

// noteWatcher counts a subscription in or out of the server's watchers.
func (s *Server) noteWatcher(sub *subscription, delta int64) {
	if watchesEvents(sub.pattern) {
		s.watchers.Add(delta)
	}
}

// eventHeaders say what an event's payload is, so that tools such as
// `bus sub -json` show it decoded: the header clientlib's values carry.
var eventHeaders = wire.AppendField(nil, "Content-Type", "application/msgpack")

// emit publishes an event on topic with body, if anyone may receive it.
// topic is not kept.
func (s *Server) emit(topic []byte, body any) {
	name := unsafe.String(unsafe.SliceData(topic), len(topic))
	res, ok := s.index.Lookup(name)
	if !ok {
		return
	}
	var mons []*subscription
	if s.nMonitors.Load() > 0 {
		if r, ok := s.monitors.Lookup(name); ok {
			mons = r.Plain
		}
	}
	if len(res.Plain) == 0 && len(res.Groups) == 0 && len(mons) == 0 {
		return
	}
	payload, err := wire.AppendBody(nil, body)
	if err != nil {
		s.log.Error("encoding a broker event", "topic", string(topic), "err", err)
		return
	}
	f := wire.Frame{
		Header: wire.Header{Op: wire.OpPub, TopicLen: uint16(len(topic)), HdrLen: uint32(len(eventHeaders)), PayloadLen: uint32(len(payload))},
		Topic:  topic, Headers: eventHeaders, Payload: payload,
	}
	m := outMsg{origin: &s.origin, pub: &f, dropsEvent: strings.HasPrefix(name, wire.SysConnDrops)}
	m.size = wire.MsgHeadLen + f.Size() - wire.HeaderLen
	for _, sub := range res.Plain {
		s.offerEvent(sub, &m, final)
	}
	for _, g := range res.Groups {
		// One member of each group, as for any message: the first with
		// room from a random start, else the first one's policy applies.
		start := rand.IntN(len(g.Members))
		var first *subscription
		for i := range g.Members {
			sub := g.Members[(start+i)%len(g.Members)]
			o := s.offerEvent(sub, &m, tryOnly)
			if o == queued {
				first = nil
				break
			}
			if o == full && first == nil {
				first = sub
			}
		}
		if first != nil {
			s.offerEvent(first, &m, final)
		}
	}
	for _, sub := range mons {
		s.offerEvent(sub, &m, passive)
	}
}

// offerEvent queues an event for sub if its connection has room; mode says
// whether its policy applies if not. It never waits.
func (s *Server) offerEvent(sub *subscription, m *outMsg, mode enqueueMode) outcome {
	if !watchesEvents(sub.pattern) || !sub.admits(m) {
		return gone
	}
	o, wake, _ := sub.c.enqueueMsg(sub, m, nil, mode)
	if o == queued {
		s.stats.delivered.Add(1)
	}
	if wake {
		sub.c.tryFlush()
	}
	return o
}

// eventTopic appends prefix, the uid and the connection's id to b.
func eventTopic(b []byte, prefix string, uid uint32, id uint64) []byte {
	b = append(b, prefix...)
	b = strconv.AppendUint(b, uint64(uid), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, id, 10)
}

// connEvent publishes c's up event (reason "") or down event.
func (c *conn) connEvent(prefix, reason, text string) {
	s := c.srv
	if s.watchers.Load() == 0 {
		return
	}
	var buf [64]byte
	topic := eventTopic(buf[:0], prefix, c.origin.UID, c.id)
	info, _ := c.connInfo()
	s.emit(topic, &wire.ConnEvent{
		ConnID: info.ConnID, PID: info.PID, UID: info.UID, GID: info.GID,
		Name: info.Name, Since: info.Since, Reason: reason, Text: text,
	})
}

// budgetHit logs, and publishes as a budget event, the first time a budget
// refuses the connection something: once per connection, so that a
// client retrying in a loop is one line and one event. Like a down
// event, a budget event is only for a connection that had its up event.
func (c *conn) budgetHit(msg string, err error) {
	if c.logged[logBudget] {
		return
	}
	c.noteOnce(logBudget, msg, "err", err)
	if c.announced { // a refusal during the handshake: no up event, so no budget event either
		c.connEvent(wire.SysConnBudget, wire.ReasonBudget, err.Error())
	}
}

// listenEvent publishes a listener's arrival or departure, if sub is a
// stream's listener (its pattern is under wire.GroupOnlyPrefix, and it is
// no monitor, which may name a stream's topic to watch its dials).
func (c *conn) listenEvent(prefix string, sub *subscription) {
	s := c.srv
	if s.watchers.Load() == 0 || sub.isMonitor() || len(sub.pattern) <= len(wire.GroupOnlyPrefix) || sub.pattern[:len(wire.GroupOnlyPrefix)] != wire.GroupOnlyPrefix {
		return
	}
	name := sub.pattern[len(wire.GroupOnlyPrefix):]
	topic := append([]byte(prefix), name...)
	if topics.ValidTopic(string(topic)) != nil {
		return // too long with the prefix: a stream name near the limit has no event
	}
	s.emit(topic, &wire.ListenEvent{Stream: name, ConnID: c.id, PID: c.origin.PID, UID: c.origin.UID, GID: c.origin.GID})
}

// closeReason classifies why c closed, from the ERR it was closed with
// (closedBy, the first fatal one) or else what its reader stopped on, and
// returns the reason and the ERR's text.
func (c *conn) closeReason(err error) (reason, text string) {
	c.mu.Lock()
	we := c.closedBy
	c.mu.Unlock()
	if we == nil {
		errors.As(err, &we)
	}
	switch {
	case we != nil:
		return reasonOf(we.Code), we.Text
	case errors.Is(err, errShuttingDown):
		return wire.ReasonShutdown, ""
	case err == nil || isQuietClose(err):
		return wire.ReasonNormal, ""
	}
	return wire.ReasonIOError, err.Error()
}

// reasonOf returns the close reason a fatal ERR's code stands for.
func reasonOf(code wire.Code) string {
	switch code {
	case wire.CodeSlowConsumer:
		return wire.ReasonSlowConsumer
	case wire.CodeBudget, wire.CodeTooManyConns:
		return wire.ReasonBudget
	case wire.CodeShuttingDown:
		return wire.ReasonShutdown
	}
	return wire.ReasonProtocolError
}
