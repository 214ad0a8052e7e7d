package bus

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// testBroker starts a Server on a fresh socket and shuts it down, checking
// that every goroutine finished, when the test ends.
func testBroker(t testing.TB, edit func(*Config)) (*Server, string) {
	t.Helper()
	path := shortPath(t)
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v; want ErrServerClosed", err)
		}
	})
	return srv, path
}

// rawClient speaks the protocol frame by frame, so tests can send what a
// real client never would.
type rawClient struct {
	t    testing.TB
	sock *unixsock.Conn
	in   *wire.Reader
	info wire.Info
}

func dialRaw(t testing.TB, path string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sock, err := unixsock.Dial(ctx, path, unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage))
	if err != nil {
		t.Fatal(err)
	}
	lim := wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 20, MaxFDs: wire.MaxFDsPerFrame}
	c := &rawClient{t: t, sock: sock, in: wire.NewReader(sock, &lim)}
	t.Cleanup(func() { sock.Close() })
	return c
}

// connectRaw dials and completes the handshake, named after the test.
func connectRaw(t testing.TB, path string) *rawClient {
	t.Helper()
	return connectNamed(t, path, t.Name())
}

// connectNamed dials and completes the handshake with HELLO name name,
// saying it takes payloads in memfds, as the current client does.
func connectNamed(t testing.TB, path, name string) *rawClient {
	t.Helper()
	return connectHello(t, path, &wire.Hello{Version: wire.Version, Name: name, FDPayloads: true})
}

// connectHello dials and completes the handshake with hello.
func connectHello(t testing.TB, path string, hello *wire.Hello) *rawClient {
	t.Helper()
	c := dialRaw(t, path)
	body, _ := wire.AppendBody(nil, hello)
	c.send(wire.AppendControl(nil, wire.OpHello, 0, body))
	f := c.next()
	if f.Op != wire.OpInfo {
		t.Fatalf("handshake answered with %v", f.Op)
	}
	if err := wire.DecodeBody(f.Payload, &c.info); err != nil {
		t.Fatal(err)
	}
	return c
}

// subscriber connects a raw client subscribed (as id 1) to pattern, with
// the subscription in place when it returns.
func subscriber(t testing.TB, path, pattern string) *rawClient {
	t.Helper()
	c := connectRaw(t, path)
	c.sub(1, pattern, "")
	c.sync()
	return c
}

func (c *rawClient) send(b []byte, fds ...int) {
	c.t.Helper()
	if _, err := c.sock.WriteWithFDs(b, fds); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads one frame, failing the test after 5 seconds.
func (c *rawClient) next() wire.Frame {
	c.t.Helper()
	f, err := c.tryNext(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

func (c *rawClient) tryNext(d time.Duration) (wire.Frame, error) {
	c.sock.SetReadDeadline(time.Now().Add(d))
	f, err := c.in.Next(nil)
	if err != nil {
		return f, err
	}
	// Copy the sections out: the buffer is reused by the next read.
	f.Topic, f.Reply = clone(f.Topic), clone(f.Reply)
	f.Headers, f.Payload = wire.Headers(clone(f.Headers)), clone(f.Payload)
	return f, nil
}

// inbox returns a topic in the connection's private inbox.
func (c *rawClient) inbox(rest string) string { return c.info.Inbox + "." + rest }

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// expectErr reads frames until an ERR and checks its code and text.
func (c *rawClient) expectErr(code wire.Code, text string) wire.Error {
	c.t.Helper()
	f := c.next()
	if f.Op != wire.OpErr {
		c.t.Fatalf("got %v; want ERR %v", f.Op, code)
	}
	var e wire.Error
	if err := wire.DecodeBody(f.Payload, &e); err != nil {
		c.t.Fatal(err)
	}
	if e.Code != code || !strings.Contains(e.Text, text) {
		c.t.Fatalf("got ERR %v %q; want %v containing %q", e.Code, e.Text, code, text)
	}
	return e
}

// expectClosed checks that the broker closed the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	if f, err := c.tryNext(5 * time.Second); err == nil {
		c.t.Fatalf("got %v; want the connection closed", f.Op)
	} else if isTimeout(err) {
		c.t.Fatal("the broker did not close the connection")
	}
}

// sync sends a PING and waits for its PONG, so that every frame sent before
// has been handled.
func (c *rawClient) sync() {
	c.t.Helper()
	c.send(wire.AppendControl(nil, wire.OpPing, 99, nil))
	if f := c.next(); f.Op != wire.OpPong || f.ID != 99 {
		c.t.Fatalf("got %v %d; want PONG 99", f.Op, f.ID)
	}
}

func (c *rawClient) sub(sid uint32, pattern, group string) {
	c.send(wire.AppendSub(nil, sid, pattern, group, 0))
}

func (c *rawClient) pub(topic string, payload string, fds ...int) {
	c.send(wire.AppendPub(nil, topic, "", nil, []byte(payload), len(fds)), fds...)
}

// countFDs returns how many descriptors this process has open.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
