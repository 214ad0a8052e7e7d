package clientlib

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// Conn is a connection to a bus. It is safe for concurrent use.
//
// A Conn outlives the socket it talks over: when the connection to the
// broker drops for a reason other than Close, it reconnects to the same
// socket path and restores its subscriptions (see Reconnect in the package
// doc), unless made with WithNoReconnect.
type Conn struct {
	opts options
	path string                    // the socket path, dialled again on reconnect
	info atomic.Pointer[wire.Info] // the current session's INFO

	mu     sync.Mutex
	sess   *session // the current session, live or lost
	status Status
	up     chan struct{} // closed when a reconnect succeeds; replaced when the connection is lost
	// installed is closed when a reconnect succeeds, and replaced at once:
	// for those that must ask the new broker again (WatchName).
	installed chan struct{}
	// reconnDone is closed when the reconnecting goroutine has returned;
	// nil if none was started.
	reconnDone chan struct{}
	pre        wire.Outbox // the SUBs restoring subscriptions: written before out
	out        wire.Outbox
	fds        int // duplicated descriptors waiting for the writer (in out)
	// fdPending is the bytes of payload memfds whose PUBs wait for the
	// writer (in out), counted against the pending limit as bytes in out
	// are; fdMarks says where each PUB starts, in order (largepayload.go).
	fdPending int
	fdMarks   []pendingPayload
	space     *sync.Cond // signalled when out shrinks
	// seq counts the frames queued on the current session; HELLO was 1.
	// While reconnecting it counts the frames buffered (see install).
	seq uint64
	err error // why the connection ended; nil while open
	// lastRefusal is the last non-fatal ERR, set by the reader before it
	// reads on, so that after a Flush it covers the frames before it.
	lastRefusal error
	pings       map[uint32]pingWait
	nextPing    uint32
	replays     []replayed // messages published while reconnecting, then until their receipts (replay.go)
	replayMem   int        // what they cost the reconnect buffer
	nextReplay  uint32
	closeBy     time.Time // set by Close: the writer's last flush ends by then
	counts      counts    // for Stats (stats.go)
	// heldNames are the names owned or queued for, with their flags:
	// asked for again after a reconnect (names.go).
	heldNames map[string]NameFlag

	// Reader-owned.
	rs          *session        // the session the running reader reads
	ready       []*Subscription // subscriptions to hand messages to after this read batch
	lastSID     uint32          // the subscription of the previous MSG, see lookupSub
	lastGen     uint64
	lastSub     *brokerSub
	lastMembers []*Subscription
	msgs        []carvedMsg // what is left of the current block of Msgs
	data        []byte      // what is left of the current block of payload bytes

	// For Stats (stats.go): MSGs read and their bytes, reader-owned, and
	// published to in once per read batch by flushReady; and the messages
	// the subscriptions lost, in the broker or in their queues.
	nIn, nInBytes uint64
	in            [2]atomic.Uint64
	dropped       atomic.Uint64

	subsMu  sync.RWMutex
	subs    map[uint32]*brokerSub // by subscription id
	byKey   map[subKey]*brokerSub // those new Subscriptions may join (see mux.go)
	subsGen atomic.Uint64         // bumped whenever subs, or a brokerSub's members, change
	nextSID uint32

	validTopic atomic.Pointer[string] // the last topic Publish validated
	inbox      inbox                  // replies to requests; see request.go

	cb        *callbacks    // runs the handlers
	kick      chan struct{} // capacity 1: output is pending
	quit      chan struct{} // closed when the connection ends for good
	life      context.Context
	endLife   context.CancelFunc // cancels life, with quit: bounds redialling
	closeOnce sync.Once
}

// session is one connection to the broker over one socket. A Conn has one
// at a time: the first from Connect, another after each reconnect.
type session struct {
	sock *unixsock.Conn
	lim  wire.Limits
	in   *wire.Reader
	send *wire.Sender  // owns the socket's write side
	down chan struct{} // closed when the session is lost (not when the Conn closes)
	lost bool          // under Conn.mu: set when the session is lost

	readerDone chan struct{}
	writerDone chan struct{}

	// Writer-owned: when the write deadline was last set, and how many of
	// the bytes written the broker had not read then (see flushOut).
	armedAt     time.Time
	armedUnread int
}

// Connect connects to a bus and completes the protocol handshake. Without
// options it connects to the default bus of the user (see ResolveSocket).
// ctx bounds the connection attempt only. Before it sends anything it
// checks that the socket's directory and the broker's process belong to a
// trusted user (see WithTrustedUIDs); if not, it returns an error matching
// ErrUntrustedBus.
//
// If the bus is not up (no socket, its directory not made yet, or a
// socket that refuses connections: a stale file), Connect waits for it
// until ctx ends, watching the directory, and then returns an error
// matching both ErrNoBus and ctx.Err(). WithNoWait makes it fail at once.
// Once connected, a Conn that loses its connection reconnects by itself
// (see Reconnecting), unless WithNoReconnect.
func Connect(ctx context.Context, opts ...Option) (*Conn, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	path := ResolveSocket(o.socket, o.dir, o.bus)
	s, info, err := dialSession(ctx, path, &o, o.noWait)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		opts:   o,
		path:   path,
		sess:   s,
		status: Connected,
		pings:  map[uint32]pingWait{},
		subs:   map[uint32]*brokerSub{},
		byKey:  map[subKey]*brokerSub{},
		kick:   make(chan struct{}, 1),
		cb:     newCallbacks(),
		quit:   make(chan struct{}),

		installed: make(chan struct{}),
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	c.space = sync.NewCond(&c.mu)
	c.info.Store(&info)
	c.seq = 1
	c.start(s)
	go c.cb.run(func(s *Subscription, err error) { c.opts.onError(c, s, err) })
	if o.will != nil {
		if err := c.setWill(ctx); err != nil { // will.go
			c.shutdown(ErrClosed, false)
			return nil, err
		}
	}
	return c, nil
}

// dialSession dials the bus at path, checks that it is trusted, and
// completes the handshake, within ctx.
func dialSession(ctx context.Context, path string, o *options, noWait bool) (*session, wire.Info, error) {
	sock, err := dialBus(ctx, path, o.trustedUIDs(), noWait)
	if err != nil {
		return nil, wire.Info{}, err
	}
	s := &session{
		sock:       sock,
		lim:        wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 30, MaxFDs: wire.MaxFDsPerFrame},
		down:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	s.in = wire.NewReader(sock, &s.lim)
	info, err := s.handshake(ctx, o.name)
	if err != nil {
		sock.Close()
		return nil, wire.Info{}, fmt.Errorf("bus: handshake with %s: %w", path, err)
	}
	return s, info, nil
}

// start starts the reader and writer of s, which must be c's current
// session.
func (c *Conn) start(s *session) {
	s.send = wire.NewSender(s.sock, func(b *wire.Outbox, descOK bool) (bool, bool) { return c.takeBatch(s, b, descOK) },
		func(int, int) {})
	go c.readLoop(s)
	go c.writeLoop(s)
}

// handshake sends HELLO and waits for INFO, within ctx.
func (s *session) handshake(ctx context.Context, name string) (wire.Info, error) {
	var info wire.Info
	stop := context.AfterFunc(ctx, func() { s.sock.SetDeadline(time.Now()) })
	defer stop()
	// fd_payloads: every MSG with a payload in a memfd is read (reader.go),
	// so the broker may send them.
	body, err := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: name, FDPayloads: true})
	if err != nil {
		return info, err
	}
	if _, err := s.sock.Write(wire.AppendControl(nil, wire.OpHello, 0, body)); err != nil {
		// A broker that refuses the connection (not allowed, full,
		// stopping) may send its ERR and close before the HELLO goes
		// out, and the write then fails; the ERR says why.
		if f, rerr := s.in.Next(nil); rerr == nil && f.Op == wire.OpErr {
			return info, decodeErr(f.Payload)
		}
		return info, err
	}
	f, err := s.in.Next(nil)
	if err != nil {
		if ctx.Err() != nil {
			return info, ctx.Err()
		}
		return info, err
	}
	switch f.Op {
	case wire.OpInfo:
	case wire.OpErr:
		return info, decodeErr(f.Payload)
	default:
		return info, fmt.Errorf("broker answered HELLO with %v", f.Op)
	}
	if err := wire.DecodeBody(f.Payload, &info); err != nil {
		return info, err
	}
	s.lim.MaxFDs = wire.MaxFDsPerFrame // the broker may batch several frames' fds
	if !stop() {
		return info, ctx.Err() // ctx ended and has set, or is setting, a deadline
	}
	s.sock.SetDeadline(time.Time{})
	return info, nil
}

// ConnID returns the connection's id on the bus, as it appears in the
// Origin of the messages it publishes. A reconnect changes it: the broker
// gives every connection a new id.
func (c *Conn) ConnID() uint64 { return c.info.Load().ConnID }

// Inbox returns the connection's private inbox, "_INBOX.<conn id>", as the
// broker announced it ("" from a broker that predates private inboxes):
// only this connection receives what is published under it. A reconnect
// changes it, with the connection's id.
func (c *Conn) Inbox() string { return c.info.Load().Inbox }

// Limits returns the limits the broker announced; the broker a reconnect
// reaches announces its own.
func (c *Conn) Limits() wire.Limits { return c.info.Load().Limits() }

// Flush waits until the broker has handled everything published before it:
// a round trip through the broker.
func (c *Conn) Flush(ctx context.Context) error { return c.ping(ctx, nil) }

// pingWait is a PING waiting for its PONG.
type pingWait struct {
	done   chan struct{} // closed when the PONG is in
	atPong func()        // run by the reader when the PONG arrives, before done is closed; may be nil
}

// ping sends a PING and waits for its PONG until ctx ends. The reader runs
// atPong, if not nil, when the PONG arrives, after handing over every
// message read before it; if ctx ends first, it may run it or not. While
// the connection is reconnecting it waits for the reconnect first; if the
// connection is lost before the PONG, it returns an error matching
// ErrConnectionLost.
func (c *Conn) ping(ctx context.Context, atPong func()) error {
	done := make(chan struct{})
	var s *session
	var id uint32
	for s == nil {
		live, err := c.live(ctx)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return c.err
		}
		if c.sess == live && !live.lost {
			s = live
			c.nextPing++
			id = c.nextPing
			c.pings[id] = pingWait{done, atPong}
			c.queueLocked(wire.AppendControl(nil, wire.OpPing, id, nil))
		}
		c.mu.Unlock()
	}
	select {
	case <-done:
		return nil
	case <-s.down:
		return fmt.Errorf("bus: waiting for the broker's answer to a PING: %w", ErrConnectionLost)
	case <-c.quit:
		return c.closedErr()
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pings, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// live returns the current session once it is live: at once while
// connected, after the reconnect while reconnecting, until ctx ends or the
// connection closes.
func (c *Conn) live(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		if c.status == Connected {
			s := c.sess
			c.mu.Unlock()
			return s, nil
		}
		up := c.up
		c.mu.Unlock()
		select {
		case <-up:
		case <-c.quit:
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: waiting for the reconnect: %w", ctx.Err())
		}
	}
}

// closeFlush bounds how long Close spends sending what is pending.
const closeFlush = time.Second

// Close flushes what was published (for up to a second), closes the
// connection and ends every subscription. It returns within about a
// second even if the broker has stopped reading. While the connection is
// reconnecting it ends the reconnect at once, and what was published
// meanwhile is reported to the error handler as undelivered (see
// UndeliveredError), as is a message kept since the reconnect whose
// receipt has not come within that second. It is safe to call more than
// once.
func (c *Conn) Close() error {
	deadline := time.Now().Add(closeFlush)
	c.mu.Lock()
	awaiting := c.err == nil && c.status == Connected && len(c.replays) > 0
	c.mu.Unlock()
	if awaiting {
		// Receipts still to come for what was published while
		// reconnecting: a PONG comes after them.
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		c.Flush(ctx)
		cancel()
	}
	c.mu.Lock()
	if c.err == nil && c.closeBy.IsZero() && c.status == Connected {
		// Under c.mu, which the writer arms its own deadline under, so
		// that it cannot put this one off.
		c.closeBy = deadline
		c.sess.sock.SetWriteDeadline(c.closeBy)
		c.clearWillLocked() // the clean goodbye (will.go)
	}
	c.mu.Unlock()
	c.shutdown(ErrClosed, true)
	return nil
}

// shutdown ends the connection with err, for good. With flush, the writer
// first sends what is pending. It waits for every goroutine of the
// connection but the callbacks' to return, so it must not be called from
// the reader, the writer or the reconnecting goroutine (the reader calls it
// after closing readerDone, which is all it waits for of the reader).
func (c *Conn) shutdown(err error, flush bool) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.status = Closed
		c.space.Broadcast()
		c.mu.Unlock()
		close(c.quit)
		c.endLife()
		c.mu.Lock()
		reconn := c.reconnDone
		c.mu.Unlock()
		if reconn != nil {
			<-reconn // the reconnect, if one is under way, gives up at once
		}
		c.mu.Lock() // the session is the reconnect's if it succeeded
		s := c.sess
		c.mu.Unlock()
		if flush {
			<-s.writerDone
		}
		s.sock.Close()
		<-s.writerDone
		<-s.readerDone
		c.mu.Lock()
		c.out.Reset()
		c.pre.Reset()
		c.fdPending, c.fdMarks = 0, nil
		c.forgetReplaysLocked(err)
		c.mu.Unlock()
		s.send.Close()
		for _, s := range c.takeAllSubs() {
			s.end(err)
		}
		if err != ErrClosed {
			c.cb.push(nil, err) // nothing else may be listening: a handler subscription just stops
		}
		if f := c.opts.onClosed; f != nil {
			c.cb.pushFunc(func() { f(c) })
		}
		c.cb.close()
	})
}

// closedErr returns why the connection ended.
func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ErrClosed
	}
	return c.err
}

// nextReconnect returns a channel closed when the next reconnect
// succeeds.
func (c *Conn) nextReconnect() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.installed
}

// LastRefusal returns the last error with which the broker refused a frame
// of this connection without ending it (a *ServerError: permission
// denied, invalid topic, …), or nil if it refused none. Such an error also
// goes to the error handler, or to the call it concerns (a Subscription's
// Next, a Request); LastRefusal is for a caller that publishes and wants to
// know whether the broker took it all: once Flush returns, every frame
// sent before the Flush has been accepted or is counted here.
func (c *Conn) LastRefusal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastRefusal
}

// Err returns nil while the connection is open and why it ended after.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func decodeErr(body []byte) error {
	e := new(ServerError)
	if err := wire.DecodeBody(body, e); err != nil {
		return err
	}
	return e
}

// isFatal reports whether a broker error ends the connection.
func isFatal(err error) bool {
	var se *ServerError
	return !errors.As(err, &se) || se.Code.Fatal()
}
