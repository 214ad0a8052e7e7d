package bustest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// RawConn is a client that speaks the wire protocol (docs/PROTOCOL.md) frame
// by frame, as the test writes them, so that a test can do what a
// well-behaved client never would: cut a frame short, send descriptors no
// frame claims, flood the broker and never read its answers. Build frames
// with bus/wire (AppendPub, AppendSub, AppendControl, AppendBody).
//
// Write, Read and Hello report errors and may be used from any goroutine
// (one writer and one reader at a time) and outside tests. The methods that
// fail the test instead (Send, Next, ExpectErr, ExpectClosed, Sync, Sub,
// Pub) must be called from the test's goroutine, on a RawConn made by
// Busd.Dial or Busd.Connect.
type RawConn struct {
	Sock *unixsock.Conn
	In   *wire.Reader
	Info wire.Info // the broker's INFO, once Hello has succeeded

	t testing.TB // for the methods that fail the test; nil outside tests
}

// NextTimeout is how long Next waits for a frame before it fails the test:
// a watchdog, generous for a loaded machine running tests under -race.
const NextTimeout = 10 * time.Second

// DialRaw connects to the broker's socket at path without saying HELLO.
// The connection accepts as many descriptors per read as the protocol
// allows, as a receiver must (PROTOCOL.md section 6).
func DialRaw(path string) (*RawConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sock, err := unixsock.Dial(ctx, path, unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage))
	if err != nil {
		return nil, err
	}
	// The client's limits are the format's, not a broker's: a test reads
	// whatever the broker sends, the largest frames included.
	lim := &wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 20, MaxFDs: wire.MaxFDsPerFrame}
	return &RawConn{Sock: sock, In: wire.NewReader(sock, lim)}, nil
}

// Hello sends HELLO with name and reads the answer into Info. A refusal
// (an ERR instead of INFO, such as too many connections) is returned as a
// *wire.Error, also when the broker refused the connection before HELLO
// could be written: its ERR is then the only thing to read.
func (c *RawConn) Hello(name string) error {
	body, err := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: name})
	if err != nil {
		return err
	}
	werr := c.Write(wire.AppendControl(nil, wire.OpHello, 0, body))
	f, err := c.Read(NextTimeout)
	switch {
	case err != nil && werr != nil:
		return werr
	case err != nil:
		return err
	case f.Op == wire.OpErr:
		e, err := DecodeErr(f)
		if err != nil {
			return err
		}
		return &e
	case f.Op != wire.OpInfo:
		return fmt.Errorf("HELLO answered with %v", f.Op)
	}
	return wire.DecodeBody(f.Payload, &c.Info)
}

// Write writes b, with fds attached to its first byte.
func (c *RawConn) Write(b []byte, fds ...int) error {
	_, err := c.Sock.WriteWithFDs(b, fds)
	return err
}

// Read reads the next frame, waiting at most d. Its sections are copies,
// the caller's to keep. The descriptors that came with it are closed: a
// test that counts them finds their number in NFDs.
func (c *RawConn) Read(d time.Duration) (wire.Frame, error) {
	c.Sock.SetReadDeadline(time.Now().Add(d))
	f, err := c.In.Next(nil)
	if err != nil {
		return f, err
	}
	f.Topic, f.Reply = clone(f.Topic), clone(f.Reply)
	f.Headers, f.Payload = wire.Headers(clone(f.Headers)), clone(f.Payload)
	if f.NFDs > 0 {
		fds, err := c.Sock.TakeFDs(int(f.NFDs))
		if err != nil {
			return f, fmt.Errorf("%v announces %d descriptors: %w", f.Op, f.NFDs, err)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	return f, nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// Close closes the connection and every descriptor received and not taken.
func (c *RawConn) Close() error { return c.Sock.Close() }

// Dial connects a RawConn to the broker without saying HELLO; it is closed
// when the test ends.
func (b *Busd) Dial(t testing.TB) *RawConn {
	t.Helper()
	c, err := DialRaw(b.Socket())
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	return c
}

// Connect dials the broker and completes the handshake, failing the test
// if the broker refuses; it is closed when the test ends.
func (b *Busd) Connect(t testing.TB, name string) *RawConn {
	t.Helper()
	c := b.Dial(t)
	if err := c.Hello(name); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c
}

// Subscribe connects a subscriber to pattern (subscription 1, in group if
// not "", with flags), with the subscription in place when it returns.
func (b *Busd) Subscribe(t testing.TB, name, pattern, group string, flags uint8) *RawConn {
	t.Helper()
	c := b.Connect(t, name)
	c.Sub(1, pattern, group, flags)
	c.Sync()
	return c
}

// Send writes b with fds, failing the test if it cannot.
func (c *RawConn) Send(b []byte, fds ...int) {
	c.t.Helper()
	if err := c.Write(b, fds...); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Next reads one frame, failing the test if none comes within NextTimeout.
func (c *RawConn) Next() wire.Frame {
	c.t.Helper()
	f, err := c.Read(NextTimeout)
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// ExpectErr reads the next frame and checks that it is an ERR with code
// and a text containing text.
func (c *RawConn) ExpectErr(code wire.Code, text string) wire.Error {
	c.t.Helper()
	f := c.Next()
	if f.Op != wire.OpErr {
		c.t.Fatalf("got %v; want ERR %v", f.Op, code)
	}
	e, err := DecodeErr(f)
	if err != nil {
		c.t.Fatal(err)
	}
	if e.Code != code || !strings.Contains(e.Text, text) {
		c.t.Fatalf("got ERR %v %q; want %v containing %q", e.Code, e.Text, code, text)
	}
	return e
}

// ExpectClosed checks that the broker closed the connection: the next read
// ends the stream instead of returning a frame.
func (c *RawConn) ExpectClosed() {
	c.t.Helper()
	f, err := c.Read(NextTimeout)
	switch {
	case err == nil:
		c.t.Fatalf("got %v; want the connection closed", f.Op)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		c.t.Fatal("the broker did not close the connection")
	}
}

// Sync sends a PING and waits for its PONG, so that every frame sent before
// has been handled (PROTOCOL.md section 3). The next frame must be the
// PONG.
func (c *RawConn) Sync() {
	c.t.Helper()
	const id = 0x5ec
	c.Send(wire.AppendControl(nil, wire.OpPing, id, nil))
	switch f := c.Next(); {
	case f.Op == wire.OpErr:
		e, _ := DecodeErr(f)
		c.t.Fatalf("got ERR %v %q; want PONG %d", e.Code, e.Text, id)
	case f.Op != wire.OpPong || f.ID != id:
		c.t.Fatalf("got %v %d; want PONG %d", f.Op, f.ID, id)
	}
}

// Sub subscribes to pattern as sid, in group if not "", with flags
// (wire.SubDisconnect or 0). It does not wait: Sync does.
func (c *RawConn) Sub(sid uint32, pattern, group string, flags uint8) {
	c.t.Helper()
	c.Send(wire.AppendSub(nil, sid, pattern, group, flags))
}

// Pub publishes payload to topic with fds.
func (c *RawConn) Pub(topic string, payload []byte, fds ...int) {
	c.t.Helper()
	c.Send(wire.AppendPub(nil, topic, "", nil, payload, len(fds)), fds...)
}

// DecodeErr decodes an ERR frame's payload.
func DecodeErr(f wire.Frame) (wire.Error, error) {
	var e wire.Error
	if f.Op != wire.OpErr {
		return e, fmt.Errorf("%v is not an ERR", f.Op)
	}
	err := wire.DecodeBody(f.Payload, &e)
	return e, err
}

// GapNotice reports whether f is a gap notice (PROTOCOL.md, MSG): a MSG from
// connection 0 with a Bus-Dropped header, no payload and a Bus-Reason. It
// returns how many messages the subscription lost and why.
func GapNotice(f wire.Frame) (lost uint64, reason string, ok bool) {
	if f.Op != wire.OpMsg || f.Origin.Conn != 0 {
		return 0, "", false
	}
	dropped, ok1 := f.Headers.Get(wire.DroppedHeader)
	reason, ok2 := f.Headers.Get(wire.ReasonHeader)
	n, err := strconv.ParseUint(dropped, 10, 64)
	if !ok1 || !ok2 || err != nil || n == 0 || reason == "" || len(f.Payload) != 0 {
		return 0, "", false
	}
	return n, reason, true
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
