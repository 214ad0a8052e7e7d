package clientlib

import (
	"bytes"
	"unsafe"
)

// ReuseMessages lends the handler each Msg instead of giving it away: the
// Msg and its Data are valid only until the handler returns, after which
// the connection fills them with a later message. Topic, Reply, Header,
// Files and PayloadFile are the handler's to keep, as without the option;
// to keep the rest, Clone the Msg. A Data read from a payload memfd (see
// "Large payloads" in the package doc) is lent too: the subscription keeps
// up to two such buffers of at most 64 MiB each for later payloads, whose
// pages are then in already (a first touch costs a page fault per page).
//
// Receiving then allocates nothing per message for the Msg and its Data (a
// Reply, Header or Files it carries are still new). On a subscription taking
// millions of small messages a second, the allocations and the garbage
// collection they cause are the largest cost of receiving (see
// docs/PERFORMANCE.md); a handler that only reads each message should use
// this option. It needs a handler, whose return gives the Msg back:
// SubscribeSync, QueueSubscribeSync and SubscribeChan refuse it.
func ReuseMessages() SubOption { return func(c *subConfig) { c.reuse = true } }

// Bounds on what a subscription with ReuseMessages keeps for reuse: idle
// Msgs of at most maxLentBytes in all handed back by the handler, and at
// most as many again taken by the reader, each with a payload buffer of at
// most maxLentData bytes and nothing else. A busy subscription has
// thousands of messages in flight between its reader and its handler (a
// read brings up to 64 KiB of frames), and a Msg the store has no room for
// is garbage when the next message needs a new one.
const (
	maxLentBytes = 2 << 20
	maxLentData  = 2 << 10
	msgSize      = int(unsafe.Sizeof(Msg{}))
)

// lentCost is what keeping m for reuse costs.
func lentCost(m *Msg) int { return msgSize + cap(m.own) }

// lend returns a Msg for the subscription's next message, with Data a copy
// of payload: one the handler has finished with if there is one, else a
// new one. Only the reader goroutine calls it.
func (s *Subscription) lend(payload []byte) *Msg {
	if len(s.free) == 0 {
		s.free = s.q.takeReturned(s.free)
	}
	var m *Msg
	if n := len(s.free); n > 0 {
		m = s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1] // cleared by the pump when the handler returned it
	} else {
		m = new(Msg)
	}
	n := len(payload)
	switch {
	case n <= cap(m.own):
		m.Data = m.own[:n:n]
	case n <= maxLentData:
		m.own = make([]byte, max(n, 64))
		m.Data = m.own[:n:n]
	default:
		m.Data = make([]byte, n)
	}
	copy(m.Data, payload)
	return m
}

// Clone returns a copy of m that shares nothing the connection may reuse:
// its Data and Header are copies. Files and PayloadFile are shared, not
// duplicated: only one of the two should close them.
func (m *Msg) Clone() *Msg {
	return &Msg{Topic: m.Topic, Reply: m.Reply, Header: m.Header.Clone(), Data: bytes.Clone(m.Data),
		Files: m.Files, PayloadFile: m.PayloadFile, Origin: m.Origin, sub: m.sub, sess: m.sess}
}
