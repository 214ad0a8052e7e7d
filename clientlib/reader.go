package clientlib

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/busd/busd/bus/wire"
)

// readLoop parses the broker's frames until the connection ends.
func (c *Conn) readLoop() {
	var err error
	for err == nil {
		var f *wire.Frame
		if f, err = c.in.NextRef(c.flushReady); err == nil {
			err = c.handle(f)
		}
	}
	c.flushReady()
	close(c.readerDone)
	c.shutdown(err, false)
}

func (c *Conn) handle(f *wire.Frame) error {
	switch f.Op {
	case wire.OpMsg:
		return c.deliver(f)
	case wire.OpPong:
		// Every MSG read before the PONG reaches its queue before anyone
		// waiting on the PING hears of it: Drain relies on that.
		c.flushReady()
		c.mu.Lock()
		done := c.pings[f.ID]
		delete(c.pings, f.ID)
		c.mu.Unlock()
		if done != nil {
			close(done)
		}
	case wire.OpPing:
		c.mu.Lock()
		c.queueLocked(wire.AppendControl(nil, wire.OpPong, f.ID, nil))
		c.mu.Unlock()
	case wire.OpErr:
		err := decodeErr(f.Payload)
		if isFatal(err) {
			return err
		}
		c.cb.push(c.subscriptionOf(err), err)
	default:
		return wire.Errorf(wire.CodeUnknownOp, "unexpected %v from the broker", f.Op)
	}
	return nil
}

// subscriptionOf finds the subscription whose SUB an error is about, and
// ends it: the broker refused it.
func (c *Conn) subscriptionOf(err error) *Subscription {
	var se *ServerError
	if !errors.As(err, &se) || se.Op != wire.OpSub {
		return nil
	}
	c.subsMu.RLock()
	var found *Subscription
	for _, s := range c.subs {
		if s.seq == se.Seq {
			found = s
			break
		}
	}
	c.subsMu.RUnlock()
	if found != nil {
		c.forget(found)
		found.end(err)
		if found.inbox != nil {
			found.inbox.refuse(err)
		}
	}
	return found
}

// deliver turns a MSG into a Msg on its subscription's queue. Descriptors
// are taken first, so they are closed even if the subscription is gone.
func (c *Conn) deliver(f *wire.Frame) error {
	var files []*os.File
	if f.NFDs > 0 {
		fds, err := c.sock.TakeFDs(int(f.NFDs))
		if err != nil {
			return wire.Errorf(wire.CodeMissingFDs, "MSG announces %d descriptors: %v", f.NFDs, err)
		}
		files = make([]*os.File, len(fds))
		for i, fd := range fds {
			files[i] = os.NewFile(uintptr(fd), "bus-fd")
		}
	}
	s := c.lookupSub(f.ID)
	if s == nil { // unsubscribed while the message was on its way
		for _, fl := range files {
			fl.Close()
		}
		return nil
	}
	var m *Msg
	switch {
	case s.reuse:
		m = s.lend(f.Payload)
	case len(f.Payload) > maxCarved && c.in.Keep():
		m = c.newMsg(nil) // the payload's bytes are the frame's own buffer: no copy
		m.Data = f.Payload[:len(f.Payload):len(f.Payload)]
	default:
		m = c.newMsg(f.Payload)
	}
	m.Topic = s.topicString(f.Topic)
	m.Files = files
	m.Origin = Origin{Conn: f.Origin.Conn, PID: int(f.Origin.PID), UID: int(f.Origin.UID), GID: int(f.Origin.GID)}
	m.sub = s
	if len(f.Reply) > 0 {
		m.Reply = string(f.Reply)
	}
	if len(f.Headers) > 0 {
		m.Header = map[string]string{}
		for k, v := range f.Headers.All() {
			m.Header[string(k)] = string(v)
		}
	}
	if s.inbox != nil {
		s.inbox.deliverReply(m)
		return nil
	}
	if s.q.add(m) {
		c.ready = append(c.ready, s)
	}
	return nil
}

// flushReady hands each subscription the messages the last read batch
// brought it: one hand-over and one wake-up per batch, not per message, so
// a busy subscription drains many messages per context switch.
func (c *Conn) flushReady() {
	behind := false
	for i, s := range c.ready {
		dropped, total, waiting := s.q.flush(c.opts.subMsgs, c.opts.subBytes)
		behind = behind || waiting > yieldAt
		if dropped > 0 && (total == uint64(dropped) || total/1024 != (total-uint64(dropped))/1024) {
			c.cb.push(s, fmt.Errorf("%w: %q dropped %d messages", ErrSlowConsumer, s.pattern, total))
		}
		c.ready[i] = nil
	}
	c.ready = c.ready[:0]
	if behind {
		runtime.Gosched()
	}
}

// yieldAt is the backlog at which the reader lets the consumers run
// before it reads on. When every CPU is busy, the reader of a busy
// connection would otherwise keep its thread for a whole time slice, and
// a consumer that is fast, only starved, would come back to a backlog of
// a hundred thousand messages: memory to hold and to scan, and with
// ReuseMessages, Msgs allocated afresh because the store of reusable ones
// ran dry. A consumer that is slow, not starved, is what the subscription
// limits are for; the yield only costs it a moment per read.
const yieldAt = 1024

// Received messages are carved out of blocks the reader allocates a few at a
// time, not allocated one by one: on a busy subscription the allocator and
// the collector were the largest cost of receiving. A block lives as long as
// any message in it, so a Msg kept for long keeps its block (at most
// msgBlock messages, or dataBlock bytes of payloads) alive.
const (
	msgBlock   = 64       // Msgs per block
	inlineData = 24       // payloads up to this size live inside their Msg
	dataBlock  = 64 << 10 // bytes per block of payload copies
	maxCarved  = 4 << 10  // larger payloads get an allocation of their own
)

// carvedMsg is a Msg with room for a small payload beside it.
type carvedMsg struct {
	m   Msg
	buf [inlineData]byte
}

// newMsg returns a Msg whose Data is a copy of payload. Only the reader
// goroutine calls it.
func (c *Conn) newMsg(payload []byte) *Msg {
	if len(c.msgs) == 0 {
		c.msgs = make([]carvedMsg, msgBlock)
	}
	cm := &c.msgs[0]
	c.msgs = c.msgs[1:]
	n := len(payload)
	switch {
	case n <= inlineData:
		cm.m.Data = cm.buf[:n:n]
	case n <= maxCarved:
		if len(c.data) < n {
			c.data = make([]byte, dataBlock)
		}
		cm.m.Data = c.data[:n:n] // capped: appending to it cannot reach a neighbour
		c.data = c.data[n:]
	default:
		cm.m.Data = make([]byte, n)
	}
	copy(cm.m.Data, payload)
	return &cm.m
}

// lookupSub finds the subscription of a MSG. Consecutive messages usually
// belong to the same one, so the reader remembers the last and checks only
// that the set of subscriptions has not changed since, instead of taking the
// map's lock for every message.
func (c *Conn) lookupSub(sid uint32) *Subscription {
	gen := c.subsGen.Load()
	if sid == c.lastSID && gen == c.lastGen && c.lastSub != nil {
		return c.lastSub
	}
	c.subsMu.RLock()
	s := c.subs[sid]
	c.subsMu.RUnlock()
	c.lastSID, c.lastGen, c.lastSub = sid, gen, s
	return s
}

// topicString returns the topic as a string, reusing the previous one when
// it is the same, as it usually is for a subscription without wildcards.
// Only the reader goroutine calls it.
func (s *Subscription) topicString(b []byte) string {
	if s.lastTopic != string(b) {
		s.lastTopic = string(b)
	}
	return s.lastTopic
}
