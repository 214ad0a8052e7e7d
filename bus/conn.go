package bus

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

type connState uint8

const (
	stateOpen     connState = iota
	stateDraining           // the writer sends what is pending, then closes
	stateClosed
)

// conn is the broker's side of one client connection.
type conn struct {
	srv    *Server
	sock   *unixsock.Conn
	id     uint64
	origin wire.Origin
	log    *slog.Logger

	// Owned by the reader goroutine.
	in      *wire.Reader
	seq     uint64 // frames received, HELLO being 1
	subs    map[uint32]*subscription
	wakes   []*conn // writers to wake once the current read batch is routed
	stalls  []*conn // receivers this batch left behind; see stall.go
	encoded []byte  // reused for a message encoded once for several receivers

	// Shared with routers and the writer.
	mu         sync.Mutex
	out        wire.Outbox
	pending    int           // bytes queued or being written
	pendingFDs int           // descriptors queued or being written
	caughtUp   chan struct{} // closed when pending falls to stallMark; nil if nobody waits
	state      connState

	// busySince is when the outbox last went from empty to holding output
	// (unix ns; a batch may still be in the writer's hands); with the
	// socket's progress it tells a receiver that is slow from one that is
	// stuck (see stall.go).
	busySince atomic.Int64
	unread    atomic.Int64 // the socket's unread bytes at the last look (stuck)
	readAt    atomic.Int64 // when a look last found them fallen (unix ns)

	send       *wire.Sender  // owns the socket's write side
	kick       chan struct{} // capacity 1: output is pending
	quit       chan struct{} // closed when the connection is closed
	quitOnce   sync.Once
	writerDone chan struct{}
}

// subscription is one SUB of one connection: the value stored in the index.
type subscription struct {
	c       *conn
	sid     uint32
	pattern string
	group   string
	// removed is set, under c.mu, when an UNSUB removes the subscription.
	// A publisher may have found it in the index just before: checked
	// under the same lock, it keeps that message from landing after the
	// PONG that tells a draining client nothing more is coming, and sends a
	// queue group's message to another member instead.
	removed bool
}

func newConn(srv *Server, sock *unixsock.Conn, id uint64) *conn {
	cred := sock.Peer()
	c := &conn{
		srv:  srv,
		sock: sock,
		id:   id,
		origin: wire.Origin{
			Conn: id, PID: uint32(cred.PID), UID: uint32(cred.UID), GID: uint32(cred.GID),
		},
		subs:       map[uint32]*subscription{},
		kick:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.log = srv.log.With("conn", id, "pid", cred.PID, "uid", cred.UID)
	c.busySince.Store(time.Now().UnixNano())
	c.in = wire.NewReader(sock, &srv.cfg.Limits)
	c.send = wire.NewSender(sock, keepOutbox, c.takeBatch, c.batchSent)
	return c
}

// serve runs the reader; it returns when the connection is finished.
func (c *conn) serve() {
	err := c.handshake()
	var we *wire.Error // outside the loop: errors.As makes it escape, once
	for err == nil {
		var f *wire.Frame
		f, err = c.in.NextRef(c.flushWakes)
		if err != nil {
			if errors.As(err, &we) && we.Seq == 0 {
				we.Seq = c.seq + 1 // the frame that could not be read
			}
			break
		}
		c.seq++
		if err = c.handle(f); err != nil && errors.As(err, &we) {
			we.Seq, we.Op = c.seq, f.Op
			if !we.Code.Fatal() {
				c.replyErr(we)
				err = nil
			}
		}
	}
	c.flushWakes()
	c.finish(err)
}

// replyErr sends a non-fatal ERR and carries on.
func (c *conn) replyErr(we *wire.Error) {
	body, _ := wire.AppendBody(nil, we)
	c.enqueueControl(wire.AppendControl(nil, wire.OpErr, 0, body))
	c.srv.stats.errors.Add(1)
	c.log.Debug("refused frame", "err", we)
}

// finish ends the connection after the reader stopped with err: it sends a
// protocol error to the client if there is one to send, removes the
// subscriptions, and waits for the writer.
func (c *conn) finish(err error) {
	// Marked before they leave the index, as in unsubscribe: a publisher
	// that found one just before then gives a queue group's message to
	// another member instead of to a connection that is going away.
	c.mu.Lock()
	for _, s := range c.subs {
		s.removed = true
	}
	c.mu.Unlock()
	for _, s := range c.subs {
		c.srv.index.Remove(s.pattern, s.group, s)
	}
	clear(c.subs)
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		c.srv.stats.errors.Add(1)
		c.log.Info("closing connection on protocol error", "err", we)
		c.mu.Lock()
		c.drainLocked(we)
		c.mu.Unlock()
	case isQuietClose(err):
		c.log.Debug("connection closed", "reason", err)
	default:
		c.log.Info("connection failed", "err", err)
	}
	c.mu.Lock()
	if c.state == stateOpen {
		c.state = stateDraining // a shutdown or vanished peer: flush what we can
		c.sock.SetWriteDeadline(deadlineSoon())
		c.wake()
	}
	c.mu.Unlock()
	<-c.writerDone
	c.abort()
	c.srv.forget(c)
}

// abort closes the socket and releases everything pending. It is safe to
// call more than once and from either goroutine.
func (c *conn) abort() {
	c.quitOnce.Do(func() {
		c.mu.Lock()
		c.state = stateClosed
		c.out.Reset(0)
		c.pending = 0
		c.mu.Unlock()
		close(c.quit)
		c.sock.Close() // also closes descriptors received and never claimed
	})
}

// flushWakes wakes the writers that the last read batch gave work to, then
// gives receivers that fell behind a moment to catch up.
func (c *conn) flushWakes() {
	for i, w := range c.wakes {
		w.tryFlush()
		c.wakes[i] = nil
	}
	c.wakes = c.wakes[:0]
	if len(c.stalls) > 0 {
		c.waitForStalled()
	}
}

func isQuietClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errShuttingDown)
}
