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
type Conn struct {
	sock *unixsock.Conn
	opts options
	info wire.Info
	lim  wire.Limits
	in   *wire.Reader
	send *wire.Sender // owns the socket's write side

	mu    sync.Mutex
	out   wire.Outbox
	fds   int        // duplicated descriptors waiting for the writer (in out)
	space *sync.Cond // signalled when out shrinks
	seq   uint64     // frames queued so far; HELLO was 1
	err   error      // why the connection ended; nil while open
	// lastRefusal is the last non-fatal ERR, set by the reader before it
	// reads on, so that after a Flush it covers the frames before it.
	lastRefusal error
	pings       map[uint32]pingWait
	nextPing    uint32
	closeBy     time.Time // set by Close: the writer's last flush ends by then

	// Writer-owned: when the write deadline was last set, and how many of
	// the bytes written the broker had not read then (see flushOut).
	armedAt     time.Time
	armedUnread int

	// Reader-owned.
	ready       []*Subscription // subscriptions to hand messages to after this read batch
	lastSID     uint32          // the subscription of the previous MSG, see lookupSub
	lastGen     uint64
	lastSub     *brokerSub
	lastMembers []*Subscription
	msgs        []carvedMsg // what is left of the current block of Msgs
	data        []byte      // what is left of the current block of payload bytes

	subsMu  sync.RWMutex
	subs    map[uint32]*brokerSub // by subscription id
	byKey   map[subKey]*brokerSub // those new Subscriptions may join (see mux.go)
	subsGen atomic.Uint64         // bumped whenever subs, or a brokerSub's members, change
	nextSID uint32

	validTopic atomic.Pointer[string] // the last topic Publish validated
	inbox      inbox                  // replies to requests; see request.go

	cb         *callbacks    // runs the error handler
	kick       chan struct{} // capacity 1: output is pending
	quit       chan struct{} // closed when the connection ends
	readerDone chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
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
	sock, err := dialBus(ctx, path, o.trustedUIDs(), o.noWait)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		sock:       sock,
		opts:       o,
		lim:        wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 30, MaxFDs: wire.MaxFDsPerFrame},
		pings:      map[uint32]pingWait{},
		subs:       map[uint32]*brokerSub{},
		byKey:      map[subKey]*brokerSub{},
		kick:       make(chan struct{}, 1),
		cb:         newCallbacks(),
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.space = sync.NewCond(&c.mu)
	c.in = wire.NewReader(sock, &c.lim)
	c.send = wire.NewSender(sock, c.takeBatch, func(int, int) {})
	if err := c.handshake(ctx); err != nil {
		sock.Close()
		return nil, fmt.Errorf("bus: handshake with %s: %w", path, err)
	}
	go c.readLoop()
	go c.writeLoop()
	go c.cb.run(func(s *Subscription, err error) { c.opts.onError(c, s, err) })
	return c, nil
}

// handshake sends HELLO and waits for INFO, within ctx.
func (c *Conn) handshake(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.sock.SetDeadline(time.Now()) })
	defer stop()
	body, err := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: c.opts.name})
	if err != nil {
		return err
	}
	if _, err := c.sock.Write(wire.AppendControl(nil, wire.OpHello, 0, body)); err != nil {
		// A broker that refuses the connection (not allowed, full,
		// stopping) may send its ERR and close before the HELLO goes
		// out, and the write then fails; the ERR says why.
		if f, rerr := c.in.Next(nil); rerr == nil && f.Op == wire.OpErr {
			return decodeErr(f.Payload)
		}
		return err
	}
	c.seq = 1
	f, err := c.in.Next(nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	switch f.Op {
	case wire.OpInfo:
	case wire.OpErr:
		return decodeErr(f.Payload)
	default:
		return fmt.Errorf("broker answered HELLO with %v", f.Op)
	}
	if err := wire.DecodeBody(f.Payload, &c.info); err != nil {
		return err
	}
	c.lim.MaxFDs = wire.MaxFDsPerFrame // the broker may batch several frames' fds
	if !stop() {
		return ctx.Err() // ctx ended and has set, or is setting, a deadline
	}
	c.sock.SetDeadline(time.Time{})
	return nil
}

// ConnID returns the connection's id on the bus, as it appears in the
// Origin of the messages it publishes.
func (c *Conn) ConnID() uint64 { return c.info.ConnID }

// Inbox returns the connection's private inbox, "_INBOX.<conn id>", as the
// broker announced it ("" from a broker that predates private inboxes):
// only this connection receives what is published under it.
func (c *Conn) Inbox() string { return c.info.Inbox }

// Limits returns the limits the broker announced.
func (c *Conn) Limits() wire.Limits { return c.info.Limits() }

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
// message read before it; if ctx ends first, it may run it or not.
func (c *Conn) ping(ctx context.Context, atPong func()) error {
	done := make(chan struct{})
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.nextPing++
	id := c.nextPing
	c.pings[id] = pingWait{done, atPong}
	c.queueLocked(wire.AppendControl(nil, wire.OpPing, id, nil))
	c.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-c.quit:
		return c.closedErr()
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pings, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// closeFlush bounds how long Close spends sending what is pending.
const closeFlush = time.Second

// Close flushes what was published (for up to a second), closes the
// connection and ends every subscription. It returns within about a
// second even if the broker has stopped reading. It is safe to call more
// than once.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.err == nil && c.closeBy.IsZero() {
		// Under c.mu, which the writer arms its own deadline under, so
		// that it cannot put this one off.
		c.closeBy = time.Now().Add(closeFlush)
		c.sock.SetWriteDeadline(c.closeBy)
	}
	c.mu.Unlock()
	c.shutdown(ErrClosed, true)
	return nil
}

// shutdown ends the connection with err. With flush, the writer first sends
// what is pending.
func (c *Conn) shutdown(err error, flush bool) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.space.Broadcast()
		c.mu.Unlock()
		close(c.quit)
		if flush {
			<-c.writerDone
		}
		c.sock.Close()
		<-c.writerDone
		<-c.readerDone
		c.mu.Lock()
		c.out.Reset()
		c.mu.Unlock()
		c.send.Close()
		for _, s := range c.takeAllSubs() {
			s.end(err)
		}
		if err != ErrClosed {
			c.cb.push(nil, err) // nothing else may be listening: a handler subscription just stops
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
