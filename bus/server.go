package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
	"github.com/busd/busd/unixsock"
)

// Server is a busd broker. Create it with NewServer, give it listeners with
// Serve, and stop it with Shutdown.
type Server struct {
	cfg   Config
	log   *slog.Logger
	index *topics.Index[*subscription]
	stats counters
	// origin stamps the broker's own messages (no-responders statuses):
	// connection 0, the broker's process.
	origin wire.Origin

	nextID atomic.Uint64

	mu        sync.Mutex
	conns     map[*conn]struct{}
	listeners map[*unixsock.Listener]struct{}
	closing   bool
	wg        sync.WaitGroup // every goroutine the server started
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
	return &Server{
		origin:    wire.Origin{PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())},
		cfg:       cfg,
		log:       log,
		index:     topics.NewIndex[*subscription](),
		conns:     map[*conn]struct{}{},
		listeners: map[*unixsock.Listener]struct{}{},
	}, nil
}

// Serve accepts connections on l until ctx is done or Shutdown is called,
// and returns ErrServerClosed then. When ctx ends, Serve shuts the whole
// server down, giving connections a second to flush. Serve may be called
// for several listeners at once; it closes l before it returns.
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
	for {
		sock, err := l.Accept()
		if err != nil {
			s.untrack(l)
			if s.isClosing() {
				return ErrServerClosed
			}
			return err
		}
		s.start(sock)
	}
}

// start sets a new connection up with its reader and writer goroutines.
func (s *Server) start(sock *unixsock.Conn) {
	c := newConn(s, sock, s.nextID.Add(1))
	s.mu.Lock()
	refuse := s.closing || len(s.conns) >= s.cfg.MaxConns
	if !refuse {
		s.conns[c] = struct{}{}
		s.wg.Add(2)
	}
	n := len(s.conns)
	s.mu.Unlock()
	if refuse {
		s.refuse(sock, n)
		return
	}
	go func() { defer s.wg.Done(); c.writeLoop() }()
	go func() { defer s.wg.Done(); c.serve() }()
}

// refuse tells a connection over the limit why it is closed.
func (s *Server) refuse(sock *unixsock.Conn, n int) {
	code, text := wire.CodeTooManyConns, "the broker serves its limit of connections"
	if s.isClosing() {
		code, text = wire.CodeShuttingDown, "the broker is shutting down"
	}
	body, _ := wire.AppendBody(nil, &wire.Error{Code: code, Text: text})
	sock.SetWriteDeadline(deadlineIn(drainTimeout))
	sock.Write(wire.AppendControl(nil, wire.OpErr, 0, body))
	sock.Close()
	s.log.Warn("refused connection", "reason", text, "conns", n)
}

// Shutdown stops accepting, tells every client the broker is shutting down,
// lets each connection flush what is pending, and waits for all of them to
// close. When ctx ends first it closes the rest at once and returns
// ctx.Err(). It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	bye := wire.Errorf(wire.CodeShuttingDown, "the broker is shutting down")
	for _, c := range conns {
		c.mu.Lock()
		c.drainLocked(bye)
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.abort()
		}
		<-done
		return ctx.Err()
	}
}

func (s *Server) track(l *unixsock.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l *unixsock.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
	l.Close()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// forget drops a finished connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

var noDeadline time.Time

func deadlineIn(d time.Duration) time.Time { return time.Now().Add(d) }

func deadlineSoon() time.Time { return deadlineIn(drainTimeout) }

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
