package bus

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

type connState uint8

const (
	stateOpen     connState = iota
	stateDraining           // the writer sends what is left, then closes
	stateClosed
)

// conn is the broker's side of one client connection.
type conn struct {
	srv    *Server
	sock   *unixsock.Conn
	id     uint64
	origin wire.Origin
	acct   *account // the uid's account: everything held for this connection is charged to it
	log    *slog.Logger
	// inbox is the connection's private inbox, "_INBOX.<id>" (access.go).
	inbox    string
	identity policy.Identity
	// subject is the policy as it applies to this connection; replaced,
	// under mu, when the policy is.
	subject atomic.Pointer[policy.Subject]
	since   time.Time // when it was accepted, for $SYS.req.conn

	// Owned by the reader goroutine.
	lim        wire.Limits // what in checks frames against: HELLO's, then the broker's
	in         *wire.Reader
	seq        uint64 // frames received, HELLO being 1
	subs       map[uint32]*subscription
	subKeys    map[subKey]uint32 // (pattern, group) → id, to refuse duplicates
	wakes      []*conn           // writers to wake once the current read batch is routed
	stalls     []*conn           // receivers this batch left behind; see pace.go
	encoded    []byte            // reused for a message encoded once for several receivers
	stallLeft  time.Duration     // what is left of this read batch's stall budget
	input      int64             // input bytes charged beyond connMemory: a large frame being read
	errAt      time.Time         // ERR rate bound: when the next ERR may go without waiting (see replyErr)
	frameArm   uint64            // the frame count when the frame deadline was set; 0 if none is set
	logged     [nLogOnce]bool    // what has been logged once already
	handshaken bool              // HELLO was accepted
	announced  bool              // its up event was published, so a down event will be
	ctrlOver   bool              // the last control frame queued took ctrlBytes past controlLimit
	fdShort    bool              // the last read was granted fewer descriptors than it could take
	sentFDs    bool              // the batch routed descriptors: endBatch paces the next read (fdpace.go)
	dropSub    *subscription     // the subscription dropFast last counted losses for
	dropN      uint64            // how many, not yet added to it (flushDrops)
	routed     wire.Receipt      // what route did with the last PUB, for its RECEIPT
	nIn        uint64            // PUBs read, published to msgsIn by countIn
	nInBytes   uint64            // bytes of the frames read, published to bytesIn by countIn
	inCounted  uint64            // nInBytes as of the last countIn
	will       *willMsg          // its last will, nil for none (will.go)

	// Shared with routers and the writer, under mu.
	mu         sync.Mutex
	out        wire.Outbox
	pending    int           // bytes queued or being written
	pendingFDs int           // descriptors queued or being written
	grant      int64         // output bytes charged to acct for this connection
	grantFDs   int64         // output descriptors charged likewise
	written    int64         // stream position the writer has written up to
	ctrlEnd    int64         // stream position just after the last control frame queued
	ctrlBytes  int           // control bytes queued since the writer last passed ctrlEnd
	progress   chan struct{} // closed when the writer finishes a batch; nil if nobody waits
	lagging    bool          // publishers stopped waiting for it; see pace.go
	// fdPayloads: its HELLO said it takes payloads in memfds
	// (payload.go); set by the reader before its first SUB, read-only
	// after.
	fdPayloads bool
	lossReason lossReason      // why the last message that did not fit did not
	name       string          // HELLO's name, for $SYS.req.conn
	helloDone  bool            // its HELLO was accepted: $SYS.req.conns lists it
	msgsOut    uint64          // MSGs queued, for $SYS.req.conns
	bytesOut   uint64          // bytes written
	dropped    uint64          // messages its subscriptions lost
	strikes    int             // waits in a row it failed; see pace.go
	drops      dropsReport     // losses for the next drops event (dropevents.go)
	gaps       []*subscription // subscriptions with losses not yet reported
	permits    replyPermits    // requests it may answer (permits.go)
	policyGen  uint64          // the SetPolicy call that subject came from (applyPolicy)
	// subs and subKeys (above) are written by the reader under mu, so
	// that SetPolicy may read them under mu.
	state connState
	// closedBy is the first fatal ERR the connection was closed with, for
	// the reason its down event and log line give; nil if none.
	closedBy *wire.Error
	// full mirrors, for reading without mu, that the connection takes no
	// message now (lagging and holding more than lagMark; setFullLocked):
	// a publisher can then count a loss without the lock (dropFast).
	// Written under mu.
	full atomic.Bool
	// msgsIn and bytesIn are nIn and nInBytes as of the last read batch,
	// and lastIn when that batch ended (Unix nanoseconds; 0: none yet),
	// for $SYS.req.conns: the reader stores them once per batch rather
	// than counting each frame in a shared word.
	msgsIn, bytesIn atomic.Uint64
	lastIn          atomic.Int64

	// evMu orders the events about this connection that may be published
	// from two goroutines: its drops events (a timer's) and its down
	// event (the reader's). Taken before mu.
	evMu sync.Mutex

	send        *wire.Sender  // owns the socket's write side
	kick        chan struct{} // capacity 1: output is pending
	quit        chan struct{} // closed when the connection is closed
	quitOnce    sync.Once
	writerDone  chan struct{}
	armedAt     time.Time // writer-owned: when the write deadline was last set
	armedUnread int       // writer-owned: the socket's unread bytes then
}

// subscription is one SUB of one connection: the value stored in the index.
type subscription struct {
	c       *conn
	sid     uint32
	pattern string
	group   string
	flags   uint8 // SUB's flags: wire.SubDisconnect
	// Under c.mu:
	// removed is set when an UNSUB removes the subscription. A publisher
	// may have found it in the index just before: checked under the same
	// lock, it keeps that message from landing after the PONG that tells a
	// draining client nothing more is coming, and sends a queue group's
	// message to another member instead.
	removed bool
	reason  lossReason // why the last loss was
	inGaps  bool       // listed in c.gaps
	inDrops bool       // listed in c.drops.subs, having lost dropsLost in its span
	// dropsLost counts the messages lost since the last drops event, while
	// inDrops.
	dropsLost uint64
	// lost counts the messages dropped since the last gap notice. It is
	// written under c.mu, except by dropFast, which only adds to a count
	// that is not 0 (so the subscription is listed in c.gaps already).
	lost atomic.Uint64
	// snapSeq is, for a SubRetained subscription, the store's sequence
	// when its snapshot was taken: a live retained publish numbered up
	// to it was in the snapshot or replaced there (retain.go). Set
	// before the subscription enters the index.
	snapSeq uint64
	// access is what the policy says beyond allowing it (access.go); nil
	// for most. Set before the subscription enters the index, and by
	// SetPolicy under c.mu.
	access atomic.Pointer[subAccess]
}

type subKey struct {
	pattern, group string
	flags          uint8
}

func newConn(srv *Server, sock *unixsock.Conn, id uint64, acct *account) *conn {
	cred := sock.Peer()
	c := &conn{
		srv:  srv,
		sock: sock,
		id:   id,
		acct: acct,
		origin: wire.Origin{
			Conn: id, PID: uint32(cred.PID), UID: uint32(cred.UID), GID: uint32(cred.GID),
		},
		since:      time.Now(),
		subs:       map[uint32]*subscription{},
		subKeys:    map[subKey]uint32{},
		kick:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.inbox = inboxName(id)
	c.identity = policy.Identity{UID: uint32(cred.UID), GID: uint32(cred.GID), Groups: cred.Groups}
	c.log = srv.log.With("conn", id, "pid", cred.PID, "uid", cred.UID)
	c.in = wire.NewReader(sock, &c.lim)
	c.in.SetLargeFrames(largePiece, c.growInput)
	sock.SetFDBudget(fdBudget{c})
	// Descriptors the socket gives up unclaimed leave the user's input
	// budget at once, and the broker's pool once closed.
	sock.SetFDCloser(func(fds []int) {
		srv.led.handOver(acct, kInputFDs, int64(len(fds)))
		srv.closer.close(fds, acct)
	})
	c.send = wire.NewSender(sock, c.takeBatch, c.batchSent)
	return c
}

// largePiece is the size of the pieces a large frame is read in: what a
// peer that announces a frame and stops sending can make the broker hold.
// Chunks, so that the pieces come from (and go back to) the free list of
// memory already mapped.
const largePiece = wire.ChunkSize

// growInput charges the next piece of a large frame to the connection's
// user before the Reader allocates it.
func (c *conn) growInput(n int) error {
	if err := c.srv.led.charge(c.acct, kInput, int64(n)); err != nil {
		return c.overBudget(err)
	}
	c.input += int64(n)
	return nil
}

// releaseInput gives back what growInput charged, once the frame is routed.
func (c *conn) releaseInput() {
	c.srv.led.uncharge(c.acct, kInput, c.input)
	c.input = 0
}

// fdBudget is the connection's descriptor budget for its socket's reads.
type fdBudget struct{ c *conn }

func (b fdBudget) ReserveFDs(max int) int {
	n := b.c.srv.led.reserveFDs(b.c.acct, max)
	b.c.fdShort = n < max // if the read is cut short, the budget is why
	return n
}
func (b fdBudget) ReleaseFDs(n int) { b.c.srv.led.uncharge(b.c.acct, kInputFDs, int64(n)) }

// serve runs the reader; it returns when the connection is finished.
func (c *conn) serve() {
	err := c.handshake()
	var we *wire.Error // outside the loop: errors.As makes it escape, once
	for err == nil {
		var f *wire.Frame
		f, err = c.in.NextRef(c.endBatch)
		if err != nil {
			if errors.As(err, &we) && we.Seq == 0 {
				we.Seq = c.seq + 1 // the frame that could not be read
			}
			break
		}
		c.seq++
		c.nInBytes += uint64(f.Size())
		receipt := f.ID != 0 && f.Op == wire.OpPub // the frame's buffer is not ours after handle
		id := f.ID
		c.routed = wire.Receipt{}
		if err = c.handle(f); err != nil && errors.As(err, &we) {
			we.Seq, we.Op = c.seq, f.Op
			if !we.Code.Fatal() {
				err = c.replyErr(we)
			}
		}
		if receipt && err == nil {
			c.enqueueControl(wire.AppendReceipt(c.encoded[:0], id, c.routed))
		}
		if err == nil && c.ctrlOver {
			err = c.waitControlDrained()
		}
	}
	err = c.explain(err) // before endBatch, which disarms the frame deadline
	c.endBatch()
	c.finish(err)
}

// explain turns what the reader stopped on into the protocol error it
// stands for: a read deadline into a timeout, a read cut short by the
// descriptor budget into an ERR naming the budget.
func (c *conn) explain(err error) error {
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.CodeBudget && c.fdShort {
		refusal := c.overBudget(c.srv.led.fdRefusal(c.acct))
		refusal.Seq = we.Seq // the frame being read, as for every error of a read
		return refusal
	}
	if !isTimeout(err) || c.frameArm == 0 || c.isClosing() {
		return err
	}
	if c.in.Partial() {
		return wire.Errorf(wire.CodeTimeout, "a frame started and did not arrive whole within %v", c.srv.cfg.FrameTimeout)
	}
	return wire.Errorf(wire.CodeTimeout, "%d descriptors were sent and no frame claimed them within %v",
		c.sock.QueuedFDs(), c.srv.cfg.FrameTimeout)
}

// finish ends the connection after the reader stopped with err: it sends a
// protocol error to the client if there is one to send, removes the
// subscriptions, and waits for the writer.
func (c *conn) finish(err error) {
	c.dropSubs()
	var we *wire.Error
	if errors.As(err, &we) {
		c.srv.stats.errors.Add(1)
		c.mu.Lock()
		c.closeLocked(we)
		c.mu.Unlock()
	}
	reason, text := c.closeReason(err)
	// will.go: before its names go to the next in their queues, so that
	// a successor's first messages come after the will (a retained will
	// does not overwrite the state its successor publishes), and before
	// the down event, so its watchers have the will first.
	c.publishWill(reason)
	c.dropNames() // names.go: each name it owned goes to the next in its queue
	args := []any{"reason", reason}
	if text != "" {
		args = append(args, "err", text)
	}
	c.evMu.Lock()
	c.mu.Lock()
	drops, lost := c.lastDropsLocked()
	c.mu.Unlock()
	if lost {
		c.publishDrops(&drops)
	}
	switch {
	case c.announced:
		// Before waiting for the writer, which may take WriteTimeout for
		// a peer that does not read: the reason is known now. The line
		// before the event, so whoever sees the event finds the line.
		c.logConn("connection closed", args...)
		c.connEvent(wire.SysConnDown, reason, text)
	case reason != wire.ReasonNormal:
		c.logConn("connection closed during its handshake", args...)
	default:
		c.log.Debug("connection closed during its handshake", "err", err)
	}
	c.evMu.Unlock()
	c.mu.Lock()
	if c.state == stateOpen {
		c.state = stateDraining // a vanished peer, or a shutdown: flush what we can
		c.wake()
	}
	c.mu.Unlock()
	<-c.writerDone
	c.abort()
	c.releaseInput()
	c.srv.forget(c)
}

// abort closes the socket and releases everything pending. It is safe to
// call more than once and from any goroutine, and never blocks: the
// descriptors it releases are closed by the closer.
func (c *conn) abort() {
	c.quitOnce.Do(func() {
		c.mu.Lock()
		c.state = stateClosed
		c.out.Reset()
		c.pending, c.pendingFDs = 0, 0
		c.releaseGrantLocked()
		c.dropPermitsLocked()
		c.wakeWaitersLocked()
		c.mu.Unlock()
		close(c.quit)
		// Off this goroutine: closing the socket closes what the client
		// sent and nobody read, which may block (see closer).
		c.srv.closer.do(func() { c.sock.Close() })
	})
}

// isClosing reports whether the connection is being closed.
func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateOpen
}

// endBatch runs when the reader has handled everything it has read and is
// about to wait for more: it wakes the writers the batch gave work to,
// lets receivers that fell behind catch up (pace.go), and sets the read
// deadline that bounds a frame left half sent.
func (c *conn) endBatch() {
	c.countIn()
	c.flushDrops()
	for i, w := range c.wakes {
		w.tryFlush()
		c.wakes[i] = nil
	}
	c.wakes = c.wakes[:0]
	if len(c.stalls) > 0 {
		c.waitForStalled()
	}
	c.srv.closer.flush() // descriptors the batch's deliveries released
	if c.sentFDs {
		c.sentFDs = false
		c.waitForFDRoom()
	}
	c.stallLeft = c.srv.cfg.StallBudget
	c.armFrameDeadline()
}

// countIn publishes what the reader counted of the batch it has read:
// one atomic add to the broker's total and three stores per batch, none
// per frame. A batch that read nothing (a wait for the rest of a frame)
// leaves the idle time running.
func (c *conn) countIn() {
	d := c.nInBytes - c.inCounted
	if d == 0 {
		return
	}
	c.inCounted = c.nInBytes
	c.srv.stats.bytesIn.Add(d)
	c.msgsIn.Store(c.nIn)
	c.bytesIn.Store(c.nInBytes)
	c.lastIn.Store(time.Now().UnixNano())
}

// armFrameDeadline bounds how long the reader waits for the rest of a
// frame it has started, or for the frame that claims descriptors that
// came ahead of it: FrameTimeout from when it first found itself waiting
// for it. A frame that completes clears the deadline, or moves it on for
// the next one.
func (c *conn) armFrameDeadline() {
	waiting := c.in.Partial() || c.sock.QueuedFDs() > 0
	switch {
	case waiting && c.frameArm != c.seq+1:
		c.sock.SetReadDeadline(time.Now().Add(c.srv.cfg.FrameTimeout))
		c.frameArm = c.seq + 1
	case !waiting && c.frameArm != 0:
		c.sock.SetReadDeadline(noDeadline)
		c.frameArm = 0
	}
}

// logOnce says what is logged at most once per connection.
type logOnce uint8

const (
	logBudget logOnce = iota
	logErrRate
	logControl
	logDenied
	nLogOnce
)

// noteOnce logs msg the first time this connection gives a reason to,
// if the server's bucket for such lines lets it (connlog.go).
func (c *conn) noteOnce(what logOnce, msg string, args ...any) {
	if !c.logged[what] {
		c.logged[what] = true
		if c.srv.noteLines.take(time.Now(), c.srv.log) {
			c.log.Warn(msg, args...)
		}
	}
}

// isQuietClose reports whether err is a client going away: end of file,
// or a reset, which is what a client that closes with frames of the
// broker's still unread in its socket causes (a clean goodbye that sends
// without waiting for the answer does).
func isQuietClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errShuttingDown) ||
		errors.Is(err, syscall.ECONNRESET)
}
