package harness

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// The relay is the cheapest broker hop this framing allows: every frame a
// connection sends goes to every other connection, with no topics, no
// validation and no handshake. Like busd it has a reader and a writer per
// connection, hands frames over in batches under the receiver's lock,
// writes each receiver's batch in one call, and lets the reader write a
// batch to an idle connection itself (wire.Sender), so the comparison is
// with the best a broker hop can do.

type relayConn struct {
	sock *unixsock.Conn
	mu   sync.Mutex
	out  wire.Outbox
	kick chan struct{}
	send *wire.Sender
}

func (c *relayConn) take(batch *wire.Outbox, descOK bool) (took, empty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.TakeInto(batch, descOK, wire.BatchMax)
}

type relay struct {
	mu    sync.Mutex
	conns []*relayConn
}

// relayFDs counts the copies of one frame's descriptors still to be sent.
type relayFDs struct {
	fds  []int
	refs atomic.Int32
}

func (r *relayFDs) Release() {
	if r.refs.Add(-1) == 0 {
		for _, fd := range r.fds {
			unix.Close(fd)
		}
	}
}

func runRelay(path string) error {
	l, err := unixsock.Listen(path, unixsock.WithConnOptions(rawOpts...))
	if err != nil {
		return err
	}
	go func() { waitParent(); l.Close() }()
	fmt.Println("ready " + path)
	r := &relay{}
	for {
		sock, err := l.Accept()
		if err != nil {
			return nil
		}
		c := &relayConn{sock: sock, kick: make(chan struct{}, 1)}
		c.send = wire.NewSender(sock, c.take, func(int, int) {})
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		go r.read(c)
		go c.write()
	}
}

func (r *relay) read(c *relayConn) {
	lim := wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 20, MaxFDs: wire.MaxFDsPerFrame}
	in := wire.NewReader(c.sock, &lim)
	var wake []*relayConn
	flush := func() {
		for _, w := range wake {
			if w.send.TryFlush() {
				continue
			}
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
		wake = wake[:0]
	}
	for {
		f, err := in.Next(flush)
		if err != nil {
			c.sock.Close()
			return
		}
		var set *relayFDs
		if f.NFDs > 0 {
			fds, err := c.sock.TakeFDs(int(f.NFDs))
			if err != nil {
				c.sock.Close()
				return
			}
			set = &relayFDs{fds: fds}
			set.refs.Store(1)
		}
		raw := in.Raw()
		r.mu.Lock()
		peers := r.conns
		r.mu.Unlock()
		for _, p := range peers {
			if p == c {
				continue
			}
			p.mu.Lock()
			if p.out.Len() == 0 {
				wake = append(wake, p)
			}
			if set != nil {
				set.refs.Add(1)
				p.out.AddFDs(set.fds, set)
			}
			p.out.Append(raw)
			p.mu.Unlock()
		}
		if set != nil {
			set.Release()
		}
	}
}

func (c *relayConn) write() {
	for range c.kick {
		if c.send.Flush() != nil {
			return
		}
	}
}
