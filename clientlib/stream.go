package clientlib

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
	"golang.org/x/sys/unix"
)

// Direct streams. DialStream makes a socketpair and sends one end, in a
// request, to a process that called Listen with the same name; after that
// the two talk over their own socket, at the speed of a plain Unix socket,
// and the bus is out of the way. Any protocol that runs over a net.Conn
// (net/http, net/rpc, gRPC, a line protocol) runs over a stream.

// StreamPrefix starts the topics that stream requests travel on: a stream
// named N is asked for on StreamPrefix + N. The broker gives messages on
// these topics to queue groups only (wire.GroupOnlyPrefix), so the socket
// a request carries reaches one listener and no one else.
const StreamPrefix = wire.GroupOnlyPrefix

// StreamErrorHeader is the header of a listener's answer that refuses a
// stream, saying why; its absence means the stream was accepted.
const StreamErrorHeader = "Stream-Error"

// listenBacklog is how many streams may wait for Accept; more are refused
// at once, so that a dialer never waits on a listener that is not
// accepting.
const listenBacklog = 128

// StreamAddr is the address of both ends of a stream: its name.
type StreamAddr string

// Network returns "busd-stream".
func (StreamAddr) Network() string { return "busd-stream" }

// String returns the stream's name.
func (a StreamAddr) String() string { return string(a) }

// StreamConn is one end of a direct stream: a connected Unix socket (its
// methods, CloseWrite and SetDeadline among them, are the socket's) with
// the stream's name as both addresses, and the identity of the process at
// the other end as the broker vouched for it.
type StreamConn struct {
	*net.UnixConn
	name string
	peer Origin
}

// LocalAddr returns the stream's name.
func (s *StreamConn) LocalAddr() net.Addr { return StreamAddr(s.name) }

// RemoteAddr returns the stream's name.
func (s *StreamConn) RemoteAddr() net.Addr { return StreamAddr(s.name) }

// Peer identifies the process at the other end: the broker took it from
// that process's socket credentials, so it cannot be forged.
func (s *StreamConn) Peer() Origin { return s.peer }

// streamTopic checks name and returns the topic its requests travel on.
func streamTopic(name string) (string, error) {
	topic := StreamPrefix + name
	if err := topics.ValidTopic(topic); err != nil {
		return "", fmt.Errorf("%w: stream name %q: %w", ErrInvalidTopic, name, err)
	}
	return topic, nil
}

// DialStream opens a direct stream to a process listening on name, waiting
// for its answer until ctx ends. It fails at once with ErrNoListener if no
// process listens on name, and with an error matching ErrRequestDropped if
// every listener is too busy, too far behind to take the request.
func (c *Conn) DialStream(ctx context.Context, name string) (*StreamConn, error) {
	topic, err := streamTopic(name)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bus: stream %q: %w", name, os.NewSyscallError("socketpair", err))
	}
	local, err := fileConn(os.NewFile(uintptr(fds[0]), "stream "+name))
	peer := os.NewFile(uintptr(fds[1]), "stream "+name)
	defer peer.Close() // the request carries a duplicate; the listener's must be the only one left
	if err != nil {
		return nil, fmt.Errorf("bus: stream %q: %w", name, err)
	}
	r, err := c.RequestMsg(ctx, &Msg{Topic: topic, Files: []*os.File{peer}})
	if err != nil {
		local.Close()
		if errors.Is(err, ErrNoResponders) {
			return nil, fmt.Errorf("%w named %q (Listen, or bus stream listen, makes one)", ErrNoListener, name)
		}
		if errors.Is(err, ErrRequestDropped) {
			return nil, fmt.Errorf("bus: stream %q: the listeners are too busy to take a stream now: %w", name, err)
		}
		return nil, err
	}
	r.CloseFiles()
	if why, refused := r.Header.Lookup(StreamErrorHeader); refused {
		local.Close()
		return nil, fmt.Errorf("%w: stream %q: %s", ErrStreamRefused, name, why)
	}
	return &StreamConn{UnixConn: local, name: name, peer: r.Origin}, nil
}

// fileConn turns f, a connected Unix stream socket, into a *net.UnixConn,
// closing f (the UnixConn has its own descriptor).
func fileConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	if err := checkStreamSocket(f); err != nil {
		return nil, err
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("descriptor is a %T, not a Unix socket", nc)
	}
	return uc, nil
}

// checkStreamSocket makes sure a descriptor some other process sent is a
// connected Unix stream socket, not a file, a pipe, a network socket, or a
// listening or unconnected one passed off as one.
func checkStreamSocket(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var domain, typ, listening int
	var serr, perr error
	if err := rc.Control(func(fd uintptr) {
		if domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); serr != nil {
			return
		}
		if typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE); serr != nil {
			return
		}
		if listening, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN); serr != nil {
			return
		}
		_, perr = unix.Getpeername(int(fd))
	}); err != nil {
		return err
	}
	switch {
	case serr != nil:
		return fmt.Errorf("descriptor is not a socket: %w", serr)
	case domain != unix.AF_UNIX || typ != unix.SOCK_STREAM:
		return fmt.Errorf("descriptor is a socket of domain %d type %d, not a Unix stream socket", domain, typ)
	case listening != 0:
		return errors.New("descriptor is a listening socket, not a connected one")
	case perr != nil:
		return fmt.Errorf("descriptor is not a connected socket: %w", perr)
	}
	return nil
}

// StreamListener accepts the direct streams dialled to its name. It is a
// net.Listener. Several processes may listen on one name: each stream goes
// to one of them.
type StreamListener struct {
	name  string
	conn  *Conn
	sub   *Subscription
	conns chan *StreamConn

	mu     sync.Mutex // orders a stream's arrival against Close
	closed bool
	done   chan struct{}
}

// streamGroup is the queue group every listener joins, so that a stream
// goes to one listener of its name.
const streamGroup = "listeners"

// Listen accepts direct streams dialled to name, until Close. Like any
// subscription it is in place at the broker once Flush returns: a dialer
// told to go ahead before then may get ErrNoListener.
func (c *Conn) Listen(name string) (*StreamListener, error) {
	topic, err := streamTopic(name)
	if err != nil {
		return nil, err
	}
	l := &StreamListener{name: name, conn: c, conns: make(chan *StreamConn, listenBacklog), done: make(chan struct{})}
	if l.sub, err = c.subscribeWith(topic, streamGroup, subConfig{listener: true}); err != nil {
		return nil, err
	}
	l.sub.startPump(l.arrive)
	return l, nil
}

// arrive takes a stream request: its socket joins the backlog, or the
// dialer hears why not.
func (l *StreamListener) arrive(m *Msg) {
	if m.Reply == "" { // not a dial: nobody to answer, nothing to accept
		m.CloseFiles()
		return
	}
	refuse := func(why string) {
		m.CloseFiles()
		m.RespondMsg(&Msg{Header: HeaderOf(StreamErrorHeader, why)})
	}
	if len(m.Files) != 1 {
		refuse(fmt.Sprintf("a stream request carries one socket, this one %d descriptors", len(m.Files)))
		return
	}
	uc, err := fileConn(m.Files[0])
	if err != nil {
		refuse(err.Error())
		return
	}
	sc := &StreamConn{UnixConn: uc, name: l.name, peer: m.Origin}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		uc.Close()
		refuse("the listener is closing")
		return
	}
	select {
	case l.conns <- sc:
		m.Respond(nil)
	default:
		uc.Close()
		refuse(fmt.Sprintf("the listener's backlog of %d streams is full", listenBacklog))
	}
}

// Accept waits for the next stream. After Close, or once the connection
// to the bus has ended, it returns an error that matches net.ErrClosed; if
// the broker refused the listener's subscription, that error.
func (l *StreamListener) Accept() (net.Conn, error) {
	return l.AcceptStream(context.Background())
}

// AcceptStream is Accept as a *StreamConn, waiting until ctx ends.
func (l *StreamListener) AcceptStream(ctx context.Context) (*StreamConn, error) {
	select {
	case sc := <-l.conns:
		return sc, nil
	case <-l.done:
	case <-l.conn.quit:
	case <-l.sub.q.done: // the broker refused the subscription, or Close ended it
		if why := l.sub.q.reason(); !errors.Is(why, ErrClosed) && l.conn.Err() == nil {
			return nil, fmt.Errorf("bus: stream listener %q: %w", l.name, why)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("bus: stream listener %q: %w", l.name, net.ErrClosed)
}

// closeWait bounds how long Close waits for the broker to confirm that no
// more stream requests are on their way to the listener.
const closeWait = 5 * time.Second

// Close stops listening: streams waiting for Accept are closed, and every
// dialer whose request was already on its way is refused, not left
// waiting.
func (l *StreamListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	// Drain, not Unsubscribe: requests queued or in flight still reach
	// arrive, which refuses them now that closed is set.
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	err := l.sub.Drain(ctx)
	cancel()
	for {
		select {
		case sc := <-l.conns:
			sc.Close()
		default:
			if errors.Is(err, ErrClosed) || l.conn.Err() != nil {
				err = nil // the connection went first: nothing left to stop
			}
			return err
		}
	}
}

// Addr returns the stream name listened on.
func (l *StreamListener) Addr() net.Addr { return StreamAddr(l.name) }
