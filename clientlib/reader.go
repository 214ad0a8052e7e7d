package clientlib

import (
	"os"
	"runtime"

	"github.com/busd/busd/bus/wire"
)

// readLoop parses the broker's frames until session s ends.
func (c *Conn) readLoop(s *session) {
	c.rs = s // the previous session's reader has returned: see reconnect
	var err error
	for err == nil {
		var f *wire.Frame
		if f, err = s.in.NextRef(c.flushReady); err == nil {
			err = c.handle(f)
		}
	}
	c.flushReady()
	close(s.readerDone)
	c.sessionEnded(s, err)
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
		p, ok := c.pings[f.ID]
		delete(c.pings, f.ID)
		c.mu.Unlock()
		if ok {
			if p.atPong != nil {
				p.atPong()
			}
			close(p.done)
		}
	case wire.OpPing:
		c.mu.Lock()
		if !c.rs.lost { // else the buffer is for the next session's frames only
			c.queueLocked(wire.AppendControl(nil, wire.OpPong, f.ID, nil))
		}
		c.mu.Unlock()
	case wire.OpReceipt:
		return c.receipt(f.ID, f.Payload)
	case wire.OpErr:
		err := decodeErr(f.Payload)
		if isFatal(err) {
			return err
		}
		c.refused(err)
	default:
		return wire.Errorf(wire.CodeUnknownOp, "unexpected %v from the broker", f.Op)
	}
	return nil
}

// deliver turns a MSG into a Msg on the queue of each subscription it is
// for. Descriptors are taken first, so they are closed even if the
// subscription is gone. A payload in a memfd (flag MsgPayloadFD) is the
// first of them, checked once here and read (or handed over) by deliverTo.
func (c *Conn) deliver(f *wire.Frame) error {
	var files []*os.File
	if f.NFDs > 0 {
		fds, err := c.rs.sock.TakeFDs(int(f.NFDs))
		if err != nil {
			return wire.Errorf(wire.CodeMissingFDs, "MSG announces %d descriptors: %v", f.NFDs, err)
		}
		files = make([]*os.File, len(fds))
		for i, fd := range fds {
			files[i] = os.NewFile(uintptr(fd), "bus-fd")
		}
	}
	pl, files, err := takePayload(f, files)
	if err != nil {
		return err
	}
	c.nIn++
	c.nInBytes += uint64(f.Size())
	bs, members := c.lookupSub(f.ID)
	if len(members) == 0 { // unsubscribed while the message was on its way
		closeAll(files)
		pl.close()
		return nil
	}
	if f.Origin.Conn == 0 { // from the broker itself: a status, or a gap notice
		if lost, reason, ok := gapNotice(f); ok {
			closeAll(files)
			pl.close()
			c.noteGap(members, lost, reason)
			return nil
		}
	}
	var one *Subscription // the only receiver, if there is one
	switch {
	case len(members) == 1:
		one = members[0]
	case bs.key.group != "":
		one = bs.pick(members)
	}
	if pl != nil && !c.checkPayload(pl, f, one, members, files) {
		return nil
	}
	if one != nil {
		c.deliverTo(one, f, files, pl, true)
	} else {
		c.deliverEach(members, f, files, pl)
	}
	pl.close() // unless a receiver took it
	return nil
}

// deliverTo gives s its own Msg of f, with files, and the payload in pl
// if it is in a memfd; with mayKeep the Msg may take the frame's own
// buffer for its payload, and pl's file.
func (c *Conn) deliverTo(s *Subscription, f *wire.Frame, files []*os.File, pl *fdPayload, mayKeep bool) {
	var m *Msg
	switch {
	case pl != nil:
		if m = c.payloadMsg(s, f, pl, mayKeep); m == nil {
			closeAll(files)
			return
		}
	case s.reuse:
		m = s.lend(f.Payload)
	case mayKeep && len(f.Payload) > maxCarved && c.rs.in.Keep():
		m = c.newMsg(nil) // the payload's bytes are the frame's own buffer: no copy
		m.Data = f.Payload[:len(f.Payload):len(f.Payload)]
	default:
		m = c.newMsg(f.Payload)
	}
	m.Topic = s.topicString(f.Topic)
	m.Files = files
	m.Origin = Origin{Conn: f.Origin.Conn, PID: int(f.Origin.PID), UID: int(f.Origin.UID), GID: int(f.Origin.GID)}
	m.sub = s
	m.sess = c.rs
	m.retained = f.Flags&wire.MsgRetained != 0
	if len(f.Reply) > 0 {
		m.Reply = string(f.Reply)
	}
	if len(f.Headers) > 0 { // most messages have none: not even a call for them
		m.Header = decodeHeader(f.Headers)
	}
	if s.inbox != nil {
		if !c.willAnswered(m) && !c.nameRestored(m) {
			s.inbox.deliverReply(m)
		}
		return
	}
	if s.q.add(m) {
		c.ready = append(c.ready, s)
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// flushReady hands each subscription the messages the last read batch
// brought it: one hand-over and one wake-up per batch, not per message, so
// a busy subscription drains many messages per context switch.
func (c *Conn) flushReady() {
	// Published once per read batch, for Stats, before the messages are
	// handed over: whoever has one sees it counted.
	if c.in[0].Load() != c.nIn {
		c.in[0].Store(c.nIn)
		c.in[1].Store(c.nInBytes)
	}
	behind := false
	for i, s := range c.ready {
		dropped, total, waiting := s.q.flush(c.opts.subMsgs, c.opts.subBytes)
		behind = behind || waiting > yieldAt
		c.reportDrops(s, dropped, total)
		if dropped > 0 {
			c.dropped.Add(uint64(dropped))
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

// topicString returns the topic as a string, reusing the previous one when
// it is the same, as it usually is for a subscription without wildcards.
// Only the reader goroutine calls it.
func (s *Subscription) topicString(b []byte) string {
	if s.lastTopic != string(b) {
		s.lastTopic = string(b)
	}
	return s.lastTopic
}
