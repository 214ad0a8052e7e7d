package bus

import (
	"context"
	"errors"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
	"github.com/busd/busd/unixsock"
)

// Server is a busd broker. Create it with NewServer, give it listeners with
// Serve, and stop it with Shutdown.
type Server struct {
	cfg    Config
	log    *slog.Logger
	index  *topics.Index[*subscription]
	stats  counters
	led    *ledger
	closer *closer
	allow  allowList
	// origin stamps the broker's own messages (statuses, gap notices):
	// connection 0, the broker's process.
	origin wire.Origin

	// monitors holds the monitor subscriptions (monitor.go), apart from
	// index: routing to receivers never sees them. nMonitors counts them,
	// so that a bus without any costs each PUB an atomic load, not a
	// second lookup.
	monitors  *topics.Index[*subscription]
	nMonitors atomic.Int64
	// started is when NewServer made the server, for $SYS.req.info.
	started time.Time
	// names are the well-known names (names.go).
	names nameRegistry

	// store holds the retained values (retain.go).
	store retainStore

	policy     atomic.Pointer[policy.Policy] // nil: the default rules alone
	permitSeed maphash.Seed                  // hashes reply topics for permits

	nextID   atomic.Uint64
	refusals everySecond // log rate of refused connections
	// watchers counts the subscriptions that could receive broker events
	// (events.go): none, and an event costs an atomic load.
	watchers  atomic.Int64
	connLines logBucket // log rate of connection lines (connlog.go)
	noteLines logBucket // log rate of the lines logged once per connection (noteOnce)

	mu    sync.Mutex
	conns map[*conn]struct{}
	byID  map[uint64]*conn // the same connections, by id, for $SYS.req.conn
	// byUID are the same connections by uid, then id: a uid that sees only
	// its own in $SYS.req.conns and .subs costs a look at them alone.
	byUID     map[uint32]map[uint64]*conn
	listeners map[*unixsock.Listener]struct{}
	policyGen uint64                               // SetPolicy calls so far (access.go)
	serving   atomic.Pointer[[]*unixsock.Listener] // the listeners, for reading without mu
	closing   bool
	quit      chan struct{}  // closed when shutdown begins
	wg        sync.WaitGroup // every connection goroutine the server started
}

// errShuttingDown stops a connection's reader when the server shuts down.
var errShuttingDown = errors.New("bus: shutting down")

// NewServer returns a Server with the given configuration.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		origin:     wire.Origin{PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())},
		started:    time.Now(),
		cfg:        cfg,
		log:        log,
		index:      topics.NewIndex[*subscription](),
		monitors:   topics.NewIndex[*subscription](),
		led:        newLedger(&cfg),
		conns:      map[*conn]struct{}{},
		byID:       map[uint64]*conn{},
		byUID:      map[uint32]map[uint64]*conn{},
		listeners:  map[*unixsock.Listener]struct{}{},
		quit:       make(chan struct{}),
		permitSeed: maphash.MakeSeed(),
		connLines:  logBucket{what: "connection lines"},
		noteLines:  logBucket{what: "once-per-connection warning lines"},
		allow:      newAllowList(cfg.AllowUIDs, cfg.AllowGIDs),
	}
	if h := cfg.hooks; h != nil && h.brokerUID != nil {
		s.origin.UID = *h.brokerUID
	}
	s.policy.Store(cfg.Policy)
	s.closer = newCloser(s.led)
	s.serving.Store(new([]*unixsock.Listener))
	if cfg.ReclaimMemory {
		s.led.reclaim = make(chan struct{}, 1)
		go reclaimLoop(s.led, s.log, s.quit)
	}
	return s, nil
}

// Serve accepts connections on l until ctx is done or Shutdown is called,
// and returns ErrServerClosed then. When ctx ends, Serve shuts the whole
// server down, giving connections a second to flush. Serve may be called
// for several listeners at once; it closes l before it returns. Accept
// failing for want of descriptors or memory does not end it: it logs,
// backs off and tries again.
func (s *Server) Serve(ctx context.Context, l *unixsock.Listener) error {
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		s.Shutdown(sctx)
	})
	defer stop()
	var backoff time.Duration
	for {
		if h := s.cfg.hooks; h != nil && h.accept != nil {
			h.accept()
		}
		sock, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				s.untrack(l)
				return ErrServerClosed
			}
			if backoff = nextBackoff(err, backoff); backoff > 0 {
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				if s.sleep(backoff) {
					continue
				}
				s.untrack(l)
				return ErrServerClosed
			}
			s.untrack(l)
			return err
		}
		backoff = 0
		s.start(sock)
	}
}

// drainTimeout is how long Serve's own shutdown (when its ctx ends) gives
// connections to flush.
const drainTimeout = time.Second

// start sets a new connection up with its reader and writer goroutines,
// or refuses it with an ERR naming the limit it is over. A peer the
// allow-lists do not admit is refused first, before its user has an
// account: it costs the broker the refusal and nothing else, and cannot
// use up its uid's budgets, or the broker's, for those who are allowed.
func (s *Server) start(sock *unixsock.Conn) {
	if peer := sock.Peer(); !s.allow.admits(peer) {
		s.stats.notAllowed.Add(1)
		s.refuse(sock, s.allow.refusal(peer))
		return
	}
	acct := s.led.open(uint32(sock.Peer().UID))
	id := s.nextID.Add(1)
	if we := s.admit(acct); we != nil {
		s.led.close(acct)
		s.refuse(sock, we)
		return
	}
	c := newConn(s, sock, id, acct)
	s.mu.Lock()
	refuse := s.closing
	if !refuse {
		s.addConnLocked(c)
		s.wg.Add(2)
		// Under mu, as SetPolicy stores a policy: either it finds c among
		// the connections, or c gets the policy it stored.
		c.subject.Store(s.policy.Load().For(c.identity, s.origin.UID))
		c.policyGen = s.policyGen
	}
	s.mu.Unlock()
	if refuse {
		s.release(c.acct, true)
		s.refuse(sock, wire.Errorf(wire.CodeShuttingDown, "the broker is shutting down"))
		return
	}
	go func() { defer s.wg.Done(); c.writeLoop() }()
	go func() { defer s.wg.Done(); c.serve() }()
}

// admit charges a new connection to its user and to the broker: a
// connection and a handshake of the user's, its buffers, and its two
// descriptors. It returns the ERR for the first limit it is over.
func (s *Server) admit(a *account) *wire.Error {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n >= s.cfg.MaxConns {
		return wire.Errorf(wire.CodeTooManyConns, "the broker serves its limit of %d connections", s.cfg.MaxConns)
	}
	steps := []struct {
		charge func() error
		undo   func()
	}{
		{func() error { return s.led.charge(a, kConns, 1) }, func() { s.led.uncharge(a, kConns, 1) }},
		{func() error { return s.led.charge(a, kHandshakes, 1) }, func() { s.led.uncharge(a, kHandshakes, 1) }},
		{func() error { return s.led.charge(a, kInput, connMemory) }, func() { s.led.uncharge(a, kInput, connMemory) }},
		{func() error { return s.led.takeFixed(a, poolFDs, fdsPerConn) }, nil},
	}
	for i, st := range steps {
		if err := st.charge(); err != nil {
			for j := i - 1; j >= 0; j-- {
				steps[j].undo()
			}
			return wire.Errorf(wire.CodeTooManyConns, "%v", err)
		}
	}
	return nil
}

// release gives back what admit charged; handshaking says whether the
// connection had not finished its handshake.
func (s *Server) release(a *account, handshaking bool) {
	if handshaking {
		s.led.uncharge(a, kHandshakes, 1)
	}
	s.led.uncharge(a, kConns, 1)
	s.led.uncharge(a, kInput, connMemory)
	s.led.give(a, poolFDs, fdsPerConn)
	s.led.close(a)
}

// handshakeDone ends the connection's charge as a handshake.
func (s *Server) handshakeDone(c *conn) {
	s.led.uncharge(c.acct, kHandshakes, 1)
	c.handshaken = true
}

// refuse tells a connection it is not served, and why, and closes it. The
// ERR is the only frame it gets, and it gets it only if the socket takes
// it at once: a refused client is not waited for.
func (s *Server) refuse(sock *unixsock.Conn, we *wire.Error) {
	// Counted before the client can read why: Stats agree with what it saw.
	s.stats.refusedConns.Add(1)
	body, _ := wire.AppendBody(nil, we)
	sock.TryWrite(wire.AppendControl(nil, wire.OpErr, 0, body))
	// Not on the accept loop: what the client sent before it was refused
	// is closed with the socket, and may block (see closer).
	s.closer.do(func() { sock.Close() })
	if n, ok := s.refusals.note(); ok {
		s.log.Warn("refused connection", "reason", we.Text, "refused since the last report", n)
	}
}

// everySecond lets a message through at most once a second, counting what
// it holds back: a client opening connections in a loop gets each refused,
// and the log one line a second about it.
type everySecond struct {
	mu   sync.Mutex
	last time.Time
	held int
}

// note counts one event and reports whether to log it now, and how many
// events the log line stands for.
func (e *everySecond) note() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.held++
	if now := time.Now(); now.Sub(e.last) >= time.Second {
		n := e.held
		e.last, e.held = now, 0
		return n, true
	}
	return 0, false
}

// Shutdown stops accepting, turns away the clients waiting in the accept
// queue of each listener that is not systemd's (ERR shutting down in place
// of INFO), tells every client the broker is shutting down, lets each
// connection flush what is pending, and waits for all of them to close.
// When ctx ends first it closes the rest at once and returns ctx.Err(). It
// is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.quit)
	}
	listeners := make([]*unixsock.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		listeners = append(listeners, l)
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	bye := wire.Errorf(wire.CodeShuttingDown, "the broker is shutting down")
	for _, l := range listeners {
		s.turnAway(l, bye)
		l.Close()
	}
	for _, c := range conns {
		c.mu.Lock()
		c.drainLocked(bye)
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.abort()
		}
		<-done
		err = ctx.Err()
	}
	// The connections are gone, and with them the lines held back: their
	// summaries now, not from timers after Shutdown has returned.
	s.connLines.flush(s.log)
	s.noteLines.flush(s.log)
	s.endActivations() // nameroute.go: their timers, and what they hold
	// Descriptors still being closed are waited for while ctx allows, and
	// otherwise left to the closer: a close that blocks (a lingering
	// socket) must not hold up shutdown.
	if cerr := s.closer.drain(ctx); cerr != nil {
		s.log.Warn("descriptors still being closed at shutdown", "err", cerr)
	}
	return err
}

func (s *Server) track(l *unixsock.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.listeners[l] = struct{}{}
	s.publishListenersLocked()
	return true
}

// publishListenersLocked copies the listeners where readers without mu
// find them.
func (s *Server) publishListenersLocked() {
	ls := make([]*unixsock.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.serving.Store(&ls)
}

func (s *Server) untrack(l *unixsock.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.publishListenersLocked()
	s.mu.Unlock()
	l.Close()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// forget drops a finished connection and gives back what it was charged.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	s.removeConnLocked(c)
	s.mu.Unlock()
	s.release(c.acct, !c.handshaken)
}

// addConnLocked lists c among the connections served. s.mu is held.
func (s *Server) addConnLocked(c *conn) {
	s.conns[c] = struct{}{}
	s.byID[c.id] = c
	own := s.byUID[c.origin.UID]
	if own == nil {
		own = map[uint64]*conn{}
		s.byUID[c.origin.UID] = own
	}
	own[c.id] = c
}

// removeConnLocked takes c out of the connections served. s.mu is held.
func (s *Server) removeConnLocked(c *conn) {
	delete(s.conns, c)
	delete(s.byID, c.id)
	if own := s.byUID[c.origin.UID]; own != nil {
		delete(own, c.id)
		if len(own) == 0 {
			delete(s.byUID, c.origin.UID)
		}
	}
}

var noDeadline time.Time

func deadlineIn(d time.Duration) time.Time { return time.Now().Add(d) }

func deadlineNow() time.Time { return time.Now() }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// ConnOptions returns the socket options the protocol needs on every
// connection the broker accepts: up to the kernel's 253 descriptors per
// read, because a client may send the descriptors of several frames in one
// sendmsg, and a wire.SendBuffer.
func ConnOptions() unixsock.ListenOption {
	return unixsock.WithConnOptions(unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage), unixsock.WithSendBuffer(wire.SendBuffer))
}

// Listen creates a listener for a Server at path with ConnOptions. Further
// options, such as unixsock.WithMode, apply as given.
func Listen(path string, opts ...unixsock.ListenOption) (*unixsock.Listener, error) {
	return unixsock.Listen(path, append(opts, ConnOptions())...)
}
