package bus

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
)

// Routing to well-known names. A message on "_NAME.<rest>" goes only to
// the subscriptions of the connection that owns the longest owned name
// <rest> equals or starts with (token-wise); subscriptions of any other
// connection, wildcards included, never get it (outMsg.named and owner,
// subscription.admits), but monitors the policy lets monitor do. Anyone
// may subscribe in advance to the topics of a name it may own: its
// subscriptions take messages only while it owns the name.
//
// With no owner, a request (a PUB with a reply topic) is held for the
// name's activation if the Config has an Activator and it starts the
// name's service (activation below); otherwise it is answered at once with
// the no-responders MSG, as a topic nobody serves.

// ownerOf returns the owner of the longest owned name rest equals or
// starts with, token-wise; nil if none.
func (r *nameRegistry) ownerOf(rest string) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := rest; ; {
		if e := r.names[name]; e != nil && e.owner != nil {
			return e.owner.c
		}
		i := strings.LastIndexByte(name, '.')
		if i < 0 {
			return nil
		}
		name = name[:i]
	}
}

// routeNamed decides where a PUB on a name's topic goes: m.owner is the
// owner (nil: nobody, and nothing gets it). It returns true if the
// message was held for an activation, and is no longer the caller's.
func (c *conn) routeNamed(f *wire.Frame, m *outMsg, topic string, set *fdSet) bool {
	m.named = true
	rest := topic[len(wire.NamePrefix):]
	if m.owner = c.srv.names.ownerOf(rest); m.owner != nil || len(f.Reply) == 0 || c.srv.cfg.Activator == nil {
		return false
	}
	return c.holdForActivation(f, m, rest, set)
}

// decideNameSub decides a SUB to the topics of names (not a monitor): it
// needs the own verb on the names its pattern's rest may stand for, as
// it will receive only while it owns one.
func (c *conn) decideNameSub(sub *policy.Subject, pattern string) error {
	if sub.Everything(policy.Own) {
		return nil
	}
	rest := pattern[len(wire.NamePrefix):]
	if d, _ := sub.DecidePattern(policy.Own, rest); !d.Allow {
		return c.deny("subscription to the topics of names", pattern, d)
	}
	return nil
}

// Activation. A request held for a name's activation is a copy of its
// PUB, charged to the requester's user's output bytes (as a queued
// message is) with its descriptors' references, until the name gets an
// owner (it is delivered, in order), the activation fails or times out
// (the requester gets the no-responders MSG with a Bus-Reason), or the
// requester closes (it is dropped). At most maxHeldPerName requests are
// held per name and maxHeld in all; past either, a request gets the
// no-responders MSG at once, with a Bus-Reason.
//
// So that one user cannot take them all from the others, a uid's
// connections may hold at most maxHeldPerUserName requests for one name
// and maxHeldPerUser in all, and start at most maxStartsPerUser
// activations that are pending at once (joining one another user started
// is free): the Activator starts at most 16 services at once
// (activation.DefaultMaxStarting), for everyone.
const (
	maxHeldPerName     = 32
	maxHeld            = 256
	maxHeldPerUserName = maxHeldPerName / 2
	maxHeldPerUser     = maxHeld / 4
	maxStartsPerUser   = 4
)

// activation is a name's pending activation.
type activation struct {
	held  []*heldMsg
	timer *time.Timer
	uid   uint32 // the user whose request started it
}

// heldMsg is a request held for an activation.
type heldMsg struct {
	from    *conn
	origin  wire.Origin
	frame   []byte // the PUB's topic, reply, headers and payload, one copy
	f       wire.Frame
	set     *fdSet
	charged int64
}

// errActivationTimeout is why a held request was answered when the name
// got no owner in time.
var errActivationTimeout = errors.New("no owner in time")

// holdForActivation holds a request to rest, which no name owns, for the
// activation of the longest name rest starts with that the Activator
// starts (or is starting). It returns false if none is, and the caller
// answers the request as usual; or if the name got an owner meanwhile,
// which m.owner then is.
func (c *conn) holdForActivation(f *wire.Frame, m *outMsg, rest string, set *fdSet) bool {
	s := c.srv
	busy := false // a name was not tried: c's uid starts no more activations now
	for name := rest; ; {
		if wire.ValidName(name) == nil {
			switch o, owner := s.holdFor(c, f, name, set); o {
			case holdDone, holdRefused:
				return true
			case holdOwned:
				m.owner = owner
				return false
			case holdBusy:
				busy = true // a shorter name's pending activation may still take it
			}
		}
		i := strings.LastIndexByte(name, '.')
		if i < 0 {
			break
		}
		name = name[:i]
	}
	if busy {
		c.statusTo(f.Reply, wire.StatusNoResponders, fmt.Sprintf("uid %d's requests already started %d activations that are pending, the limit", c.origin.UID, maxStartsPerUser))
	}
	return busy
}

type holdOutcome uint8

const (
	holdNone    holdOutcome = iota // the name has no service
	holdDone                       // held
	holdRefused                    // answered with a refusal
	holdOwned                      // the name has an owner now: route it there
	holdBusy                       // not tried: the requester's uid may start no more activations
)

// holdFor holds f for the activation of name, starting it if none is
// pending. If name has an owner (it got one since the caller looked), it
// returns holdOwned and the owner.
func (s *Server) holdFor(c *conn, f *wire.Frame, name string, set *fdSet) (holdOutcome, *conn) {
	r := &s.names
	r.mu.Lock()
	e := r.entryLocked(name)
	name = e.name // not a view of the read buffer: the Activator and timer keep it
	if e.owner != nil {
		r.mu.Unlock()
		return holdOwned, e.owner.c // taken meanwhile: route it to its owner as usual
	}
	if e.act == nil {
		if r.startedBy[c.origin.UID] >= maxStartsPerUser {
			r.forgetIdleLocked(e)
			r.mu.Unlock()
			return holdBusy, nil
		}
		act := &activation{uid: c.origin.UID}
		e.act = act
		r.startedBy[act.uid]++
		r.mu.Unlock()
		failed := func(err error) { s.activationFailed(name, act, err) }
		if !s.cfg.Activator.Activate(name, failed) {
			r.mu.Lock()
			if e.act == act {
				s.failHeldLocked(e, nil)
			}
			r.forgetIdleLocked(e)
			r.mu.Unlock()
			return holdNone, nil
		}
		timeout := orDefault(s.cfg.ActivationTimeout, defaultActivationTimeout)
		r.mu.Lock()
		if e.act == act {
			act.timer = time.AfterFunc(timeout, func() {
				s.activationFailed(name, act, fmt.Errorf("%w (%v)", errActivationTimeout, timeout))
			})
		}
	}
	// While the Activator was called without the lock, the activation may
	// have ended: the service took the name, or failed already.
	switch {
	case e.owner != nil:
		r.mu.Unlock()
		return holdOwned, e.owner.c
	case e.act == nil:
		r.mu.Unlock()
		c.statusTo(f.Reply, wire.StatusNoResponders, "activation of "+name+" failed as it started")
		return holdRefused, nil
	}
	why := ""
	switch {
	case f.Body != nil:
		why = "the request is too large to hold while " + name + " is activated"
	case len(e.act.held) >= maxHeldPerName:
		why = fmt.Sprintf("%d requests already wait for the activation of %s", len(e.act.held), name)
	case r.held >= maxHeld:
		why = fmt.Sprintf("%d requests already wait for activations", r.held)
	case r.heldByUID[c.origin.UID] >= maxHeldPerUser:
		why = fmt.Sprintf("uid %d's requests already wait for activations %d times, the limit", c.origin.UID, r.heldByUID[c.origin.UID])
	case e.act.heldFrom(c.origin.UID) >= maxHeldPerUserName:
		why = fmt.Sprintf("%d of uid %d's requests already wait for the activation of %s, the limit", maxHeldPerUserName, c.origin.UID, name)
	}
	h := &heldMsg{from: c, origin: c.origin, set: set}
	if why == "" {
		h.charged = int64(wire.MsgHeadLen + f.Size() - wire.HeaderLen)
		if err := s.led.charge(c.acct, kOutput, h.charged); err != nil {
			why = "no room to hold the request while " + name + " is activated: " + err.Error()
		}
	}
	if why != "" {
		r.mu.Unlock()
		// Outside the lock: the answer may wait for room in c's queue.
		c.statusTo(f.Reply, wire.StatusNoResponders, why)
		return holdRefused, nil
	}
	defer r.mu.Unlock()
	h.frame = append(append(append(append([]byte(nil), f.Topic...), f.Reply...), f.Headers...), f.Payload...)
	h.f = wire.Frame{Header: f.Header}
	b := h.frame
	h.f.Topic, b = b[:len(f.Topic)], b[len(f.Topic):]
	h.f.Reply, b = b[:len(f.Reply)], b[len(f.Reply):]
	h.f.Headers, b = b[:len(f.Headers)], b[len(f.Headers):]
	h.f.Payload = b
	if set != nil {
		set.ref()
		set.hold() // its publisher stays charged for a payload in a memfd until it is delivered
	}
	e.act.held = append(e.act.held, h)
	r.held++
	r.heldBy[c]++
	r.heldByUID[h.origin.UID]++
	return holdDone, nil
}

// heldFrom counts the requests of uid's connections act holds.
func (act *activation) heldFrom(uid uint32) int {
	n := 0
	for _, h := range act.held {
		if h.origin.UID == uid {
			n++
		}
	}
	return n
}

// endActivationLocked takes e's pending activation away from e: its
// timer is stopped, and its starter's count given back. It returns its
// held requests, which it keeps no more: the Activator may keep its
// failed callback, and with it the activation, long after.
func (s *Server) endActivationLocked(e *nameEntry) []*heldMsg {
	r := &s.names
	act := e.act
	e.act = nil
	if act.timer != nil {
		act.timer.Stop()
	}
	if r.startedBy[act.uid]--; r.startedBy[act.uid] <= 0 {
		delete(r.startedBy, act.uid)
	}
	held := act.held
	act.held = nil
	return held
}

// statusTo sends c, from its own reader, the no-responders MSG on reply
// with a Bus-Status and a Bus-Reason.
func (c *conn) statusTo(reply []byte, status, reason string) {
	hdrs := wire.AppendField(nil, wire.StatusHeader, status)
	hdrs = wire.AppendField(hdrs, wire.ReasonHeader, reason)
	c.toOwn(reply, hdrs, nil, nil)
}

// activationFailed answers the requests held for act, name's activation,
// if it is still pending. It runs on the Activator's goroutine or a
// timer, which no read batch or write ends: it hands the descriptors
// the held requests released to the closer itself, else they (and a
// payload's charge, payload.go) would wait for some other connection's
// next batch.
func (s *Server) activationFailed(name string, act *activation, err error) {
	r := &s.names
	r.mu.Lock()
	if e := r.names[name]; e != nil && e.act == act {
		s.log.Warn("activation failed", "name", name, "err", err)
		s.failHeldLocked(e, err)
		r.forgetIdleLocked(e)
	}
	r.mu.Unlock()
	s.closer.flush()
}

// failHeldLocked ends e's activation: each held request's requester gets
// the no-responders MSG, with why (nil: the name has no service).
func (s *Server) failHeldLocked(e *nameEntry, why error) {
	held := s.endActivationLocked(e)
	reason := "no service for " + e.name
	if why != nil {
		reason = fmt.Sprintf("activation of %s failed: %v", e.name, why)
	}
	hdrs := wire.AppendField(nil, wire.StatusHeader, wire.StatusNoResponders)
	hdrs = wire.AppendField(hdrs, wire.ReasonHeader, reason)
	for _, h := range held {
		s.brokerTo(h.from, h.f.Reply, hdrs, func(sub *subscription) bool { return sub.c == h.from }, nil, nil)
		s.unholdLocked(h)
	}
}

// releaseHeldLocked delivers the requests held for e's activation, in
// order, to owner, its new owner; one that reaches none of its
// subscriptions gets its requester the no-responders MSG. Each is decided
// again under the policy in force now: one a policy loaded while it was
// held no longer lets its requester publish is answered the same way, the
// rule as the reason, and reaches nobody.
func (s *Server) releaseHeldLocked(e *nameEntry, owner *conn) {
	for _, h := range s.endActivationLocked(e) {
		topic := unsafe.String(unsafe.SliceData(h.f.Topic), len(h.f.Topic))
		if _, err := h.from.checkPublish(topic, h.f.Reply); err != nil {
			var we *wire.Error
			reason := err.Error()
			if errors.As(err, &we) {
				reason = we.Text
			}
			hdrs := wire.AppendField(nil, wire.StatusHeader, wire.StatusNoResponders)
			hdrs = wire.AppendField(hdrs, wire.ReasonHeader, reason+" (the policy changed while the request was held)")
			s.brokerTo(h.from, h.f.Reply, hdrs, func(sub *subscription) bool { return sub.c == h.from }, nil, nil)
			s.unholdLocked(h)
			continue
		}
		m := outMsg{origin: &h.origin, pub: &h.f, named: true, owner: owner}
		m.size = wire.MsgHeadLen + h.f.Size() - wire.HeaderLen
		m.nfds = int(h.f.NFDs)
		m.replyInbox = inboxOf(string(h.f.Reply))
		if s.brokerTo(owner, []byte(topic), nil, func(sub *subscription) bool { return sub.admits(&m) }, &m, h.set) == 0 && len(h.f.Reply) > 0 {
			s.brokerTo(h.from, h.f.Reply, noRespondersHeaders, func(sub *subscription) bool { return sub.c == h.from }, nil, nil)
		}
		s.heldToMonitors(owner, topic, &m, h.set)
		s.unholdLocked(h)
	}
}

// heldToMonitors shows m, a held request just delivered to owner, to the
// monitors of topic that may see it, as routing shows any message: a copy
// without descriptors but a payload in a memfd (of set, each monitor its
// own duplicate: monitorPayload), offered passively (monitor.go). Under the
// registry's lock, which comes before conn.mu; the sender token is only
// tried.
func (s *Server) heldToMonitors(owner *conn, topic string, m *outMsg, set *fdSet) {
	if s.nMonitors.Load() == 0 {
		return
	}
	res, ok := s.monitors.Lookup(topic)
	if !ok || len(res.Plain) == 0 {
		return
	}
	shown := m
	if _, forged := m.pub.Headers.Get(wire.FDsHeader); m.nfds > 0 || forged {
		var mm outMsg
		var f wire.Frame
		owner.monitorCopy(&mm, &f, m)
		shown = &mm
	}
	payload := set != nil && shown.pub.Flags&wire.PubPayloadFD != 0
	for _, sub := range res.Plain {
		if !sub.admits(shown) {
			continue
		}
		var own *fdSet
		if payload && sub.c.fdPayloads { // else enqueueMsg reports the loss (fd_payloads)
			if own = s.monitorPayload(sub.c, set); own == nil {
				sub.c.refuseMonitorPayload(sub)
				continue
			}
		}
		o, wake, _ := sub.c.enqueueMsg(sub, shown, own, passive)
		if own != nil {
			own.Release()
		}
		if o == queued {
			s.stats.delivered.Add(1)
		}
		if wake {
			sub.c.tryFlush()
		}
	}
}

// endActivations ends the pending activations at shutdown, once every
// connection is closed: their timers are stopped, and what their
// requests held is released (their requesters are gone).
func (s *Server) endActivations() {
	r := &s.names
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.names {
		if e.act != nil {
			for _, h := range s.endActivationLocked(e) {
				s.unholdLocked(h)
			}
			r.forgetIdleLocked(e)
		}
	}
}

// unholdLocked releases what a held request held.
func (s *Server) unholdLocked(h *heldMsg) {
	r := &s.names
	r.held--
	if r.heldBy[h.from]--; r.heldBy[h.from] <= 0 {
		delete(r.heldBy, h.from)
	}
	if r.heldByUID[h.origin.UID]--; r.heldByUID[h.origin.UID] <= 0 {
		delete(r.heldByUID, h.origin.UID)
	}
	s.led.uncharge(h.from.acct, kOutput, h.charged)
	if h.set != nil {
		h.set.unhold()
		h.set.Release()
	}
}

// dropHeldLocked drops the requests c has held, as it closes.
func (s *Server) dropHeldLocked(c *conn) {
	for _, e := range s.names.names {
		if e.act == nil {
			continue
		}
		kept := e.act.held[:0]
		for _, h := range e.act.held {
			if h.from == c {
				s.unholdLocked(h)
			} else {
				kept = append(kept, h)
			}
		}
		clear(e.act.held[len(kept):])
		e.act.held = kept
	}
}

// brokerTo queues, for the subscriptions of to matching topic that want
// says may have it, one message: m (with set, its descriptors) if not nil
// (a held request), else a
// MSG from the broker with hdrs and no payload. It never waits: a
// subscription with no room loses it under its own policy. It returns how
// many subscriptions got it.
func (s *Server) brokerTo(to *conn, topic []byte, hdrs wire.Headers, want func(*subscription) bool, m *outMsg, set *fdSet) int {
	res, ok := s.index.Lookup(string(topic))
	if !ok {
		return 0
	}
	if m == nil {
		f := &wire.Frame{
			Header: wire.Header{Op: wire.OpPub, TopicLen: uint16(len(topic)), HdrLen: uint32(len(hdrs))},
			Topic:  topic, Headers: hdrs,
		}
		m = &outMsg{origin: &s.origin, pub: f}
		m.size = wire.MsgHeadLen + f.Size() - wire.HeaderLen
	}
	n := 0
	offer := func(sub *subscription) bool {
		if sub.c != to || !want(sub) {
			return false
		}
		o, wake, _ := to.enqueueMsg(sub, m, set, final)
		if wake {
			to.tryFlush()
		}
		if o == queued {
			s.stats.delivered.Add(1)
			n++
		}
		return o == queued
	}
	for _, sub := range res.Plain {
		offer(sub)
	}
	for _, g := range res.Groups {
		for _, sub := range g.Members {
			if offer(sub) {
				break
			}
		}
	}
	return n
}
