package clientlib

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/busd/busd/bus/wire"
)

// Reconnecting. When the connection to the broker drops for a reason other
// than Close, the session is lost: the reader and writer of its socket
// return, what was queued and not yet written is dropped, requests and
// PINGs waiting on it fail with ErrConnectionLost. Unless the Conn was made
// with WithNoReconnect, and if the reason allows it (see reconnectable), the
// Conn then reconnects on a goroutine of its own: it waits for the bus
// (redial.go), dials the same path with the same options and trust checks,
// and installs the new session, whose first frames are a SUB for every
// subscription, before the PUBs published meanwhile.

// Status says whether a Conn is connected.
type Status int

// The states of a Conn: Connected, then Reconnecting and Connected again
// after each drop, and Closed at the end.
const (
	Connected    Status = iota // a session with the broker is live
	Reconnecting               // the connection dropped; the Conn is getting it back
	Closed                     // the Conn has ended: Close, or an error it does not reconnect after
)

// String returns "connected", "reconnecting" or "closed".
func (s Status) String() string {
	switch s {
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Status returns whether the Conn is connected, reconnecting or closed.
func (c *Conn) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Restored says what a reconnect restored; the reconnect handler gets it.
type Restored struct {
	ConnID uint64 // the new connection id (Conn.ConnID)
	// Subscriptions is how many Subscriptions were restored, queue group
	// members included, stream listeners and the request inbox not.
	Subscriptions int
	// Listeners is how many StreamListeners were restored.
	Listeners int
	// Inbox reports whether the request inbox was restored, under the new
	// connection's inbox (Conn.Inbox).
	Inbox bool
	// Names is how many well-known names the connection owned or queued
	// for, asked for again (with their flags) after the subscriptions:
	// another connection may own them now (RequestName).
	Names int
	// Buffered is how many bytes published while reconnecting go out
	// after the subscriptions, in Messages messages. Each asks the broker
	// for a receipt: one that reaches no subscriber goes to the error
	// handler as an *UndeliveredError (see UndeliveredError).
	Buffered int
	Messages int
	// Attempts is how many dials it took.
	Attempts int
}

// reconnectable reports whether a connection that ended with err should
// be made again. A broker that went away (EOF, a reset, its "shutting
// down" ERR, which means a successor may come at once), a broker that
// stopped reading (ErrWriteTimeout), one that failed (internal) or was full
// at the moment: yes. One that dropped this connection for falling behind
// (slow consumer): yes, the disconnect handler hears of it. A protocol
// violation (a malformed frame either way, a limit the client broke) or a
// budget the client went over: no, it would only happen again.
func reconnectable(err error) bool {
	var we *wire.Error
	if !errors.As(err, &we) {
		return true // the socket's errors, ErrWriteTimeout
	}
	switch we.Code {
	case wire.CodeShuttingDown, wire.CodeSlowConsumer, wire.CodeTooManyConns, wire.CodeInternal, wire.CodeTimeout:
		return true
	}
	return false
}

// redialable reports whether a failed redial should be tried again: the
// bus is not there yet, or not ready; not a bus that is not trusted or
// that refuses this client.
func redialable(err error) bool {
	return !errors.Is(err, ErrUntrustedBus) && reconnectable(err)
}

// sessionEnded handles the end of session s with err, seen by its reader or
// writer: nothing if the session was already lost or the Conn is closing;
// else it reconnects, or ends the Conn if it may not. It must not be
// called holding c.mu.
func (c *Conn) sessionEnded(s *session, err error) {
	c.mu.Lock()
	if c.err != nil || s.lost {
		c.mu.Unlock()
		return
	}
	if c.opts.noReconnect || !reconnectable(err) {
		c.mu.Unlock()
		c.shutdown(err, false)
		return
	}
	s.lost = true
	c.status = Reconnecting
	unsent := c.out.Len()
	c.out.Reset()
	c.pre.Reset()
	c.fds = 0
	c.fdPending, c.fdMarks = 0, nil
	c.seq = 0
	c.inbox.forgetSeqs()
	c.forgetReplaysLocked(ErrConnectionLost) // sent, or lost with the output: the broker has not said which
	clear(c.pings)
	c.up = make(chan struct{})
	done := make(chan struct{})
	c.reconnDone = done
	close(s.down)
	c.space.Broadcast()
	c.mu.Unlock()
	s.sock.Close()
	if unsent > 0 {
		err = fmt.Errorf("%w (%d bytes of output not yet written were lost)", err, unsent)
	}
	if f := c.opts.onDisconnect; f != nil {
		c.cb.pushFunc(func() { f(c, err) })
	}
	go c.reconnect(s, done)
}

// reconnect makes a new session to replace old, until it succeeds, the
// Conn closes, or a redial fails for good (then it ends the Conn). It
// closes done when it returns.
func (c *Conn) reconnect(old *session, done chan struct{}) {
	defer close(done)
	<-old.readerDone
	<-old.writerDone
	old.send.Close()
	for attempt := 0; ; attempt++ {
		if err := waitToRedial(c.life, attempt); err != nil {
			return // closed
		}
		ctx, cancel := context.WithTimeout(c.life, redialTimeout)
		s, info, err := dialSession(ctx, c.path, &c.opts, false)
		cancel()
		if err != nil {
			if c.life.Err() != nil {
				return
			}
			if !redialable(err) {
				// shutdown waits for done: not from here.
				go c.shutdown(fmt.Errorf("bus: reconnecting: %w", err), false)
				return
			}
			continue
		}
		if !c.install(s, &info, attempt+1) {
			s.sock.Close() // closed meanwhile
		}
		return
	}
}

// redialTimeout bounds one redial, handshake included: a broker that
// accepts and does not answer is given up on, and dialled again.
const redialTimeout = 5 * time.Second

// install makes s the Conn's session, unless the Conn has closed (then it
// returns false): it queues, ahead of what was published while
// reconnecting, a SUB for every broker subscription that has members not
// leaving (the request inbox's under the new inbox), numbers the frames as
// the new broker will, starts the reader and writer, and queues the
// reconnect handler, before any later drop can queue the disconnect
// handler. attempts is how many dials it took.
func (c *Conn) install(s *session, info *wire.Info, attempts int) bool {
	r := Restored{ConnID: info.ConnID, Attempts: attempts}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.subsMu.Lock()
	sids := make([]uint32, 0, len(c.subs))
	for sid := range c.subs {
		sids = append(sids, sid)
	}
	slices.Sort(sids) // in the order they were made
	seq := uint64(1)  // HELLO
	for _, sid := range sids {
		bs := c.subs[sid]
		if bs.active == 0 || len(bs.members) == 0 {
			continue // leaving: nothing to restore
		}
		if in := bs.members[0].inbox; in != nil && info.Inbox != "" {
			c.rekeyInbox(bs, in, info.Inbox+".")
		}
		seq++
		bs.seq = seq
		c.pre.Append(wire.AppendSub(nil, bs.sid, bs.key.pattern, bs.key.group, bs.key.flags))
		for _, m := range bs.members {
			switch {
			case m.closing.Load():
			case m.inbox != nil:
				r.Inbox = true
			case m.listener:
				r.Listeners++
			default:
				r.Subscriptions++
			}
		}
	}
	c.subsGen.Add(1)
	c.subsMu.Unlock()
	if f := c.willFrame(info, false); f != nil { // will.go: set again before anything is published
		seq++
		c.pre.Append(f)
	}
	r.Names = c.restoreNamesLocked(info) // names.go
	seq += uint64(r.Names)
	c.seq = seq // the kept messages' PUBs follow the SUBs
	r.Messages = len(c.replays)
	r.Buffered = c.replayLocked(info)
	c.sess = s
	c.status = Connected
	c.counts.reconnects++
	c.info.Store(info)
	close(c.up)
	close(c.installed)
	c.installed = make(chan struct{})
	if f := c.opts.onReconnect; f != nil {
		c.cb.pushFunc(func() { f(c, r) })
	}
	c.start(s)
	c.wake()
	return true
}

// rekeyInbox moves the request inbox's broker subscription bs to the new
// connection's inbox, prefix. Under c.subsMu; the reader is not running.
func (c *Conn) rekeyInbox(bs *brokerSub, in *inbox, prefix string) {
	if c.byKey[bs.key] == bs {
		delete(c.byKey, bs.key)
		bs.key.pattern = prefix + ">"
		c.byKey[bs.key] = bs
	} else {
		bs.key.pattern = prefix + ">"
	}
	for _, m := range bs.members {
		m.pattern = bs.key.pattern
	}
	in.mu.Lock()
	in.prefix = prefix
	in.mu.Unlock()
}
