package clientlib

import (
	"encoding/binary"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// fakeBus is a broker played by the test, frame by frame: it answers the
// handshake and then reads and writes only what the test tells it to, so
// a test can send what a real broker sends only under load (gap notices,
// refusals) or stop reading altogether.
type fakeBus struct {
	t    *testing.T
	path string
	l    *unixsock.Listener
	sock *unixsock.Conn
	in   *wire.Reader
	lim  wire.Limits
	// fdPayload is the max_fd_payload its INFO announces: 0, none.
	fdPayload uint64
}

// newFakeBus listens on a fresh socket; connect makes the client.
func newFakeBus(t *testing.T) *fakeBus {
	t.Helper()
	path, l, remove := tempListener(t)
	fb := &fakeBus{t: t, path: path, l: l, lim: wire.DefaultLimits}
	t.Cleanup(func() {
		remove()
		if fb.sock != nil {
			fb.sock.Close()
		}
	})
	return fb
}

// connect connects a client to the fake broker, which answers its HELLO.
func (fb *fakeBus) connect(opts ...Option) *Conn {
	fb.t.Helper()
	accepted := make(chan error, 1)
	go func() {
		var err error
		fb.sock, fb.in, err = acceptHelloFD(fb.l, &fb.lim, fb.fdPayload)
		if err == nil {
			// The watchdog of every read and write of the test's broker.
			fb.sock.SetDeadline(time.Now().Add(10 * time.Second))
		}
		accepted <- err
	}()
	// One connection per fake broker: reconnecting would wait for another.
	c := connect(fb.t, fb.path, append([]Option{WithNoReconnect()}, opts...)...)
	if err := <-accepted; err != nil {
		fb.t.Fatalf("fake broker handshake: %v", err)
	}
	// Before c closes: Close then has nothing to wait for.
	fb.t.Cleanup(func() { fb.sock.Close() })
	return c
}

// tempListener listens on a fresh socket for a broker the test plays;
// remove closes it and removes the socket.
func tempListener(tb testing.TB) (path string, l *unixsock.Listener, remove func()) {
	dir, err := os.MkdirTemp("", "fb") // short: sun_path is 108 bytes
	if err != nil {
		tb.Fatal(err)
	}
	path = dir + "/f.sock"
	if l, err = unixsock.Listen(path); err != nil {
		tb.Fatal(err)
	}
	return path, l, func() { l.Close(); os.RemoveAll(dir) }
}

// acceptHello accepts one client on l and answers its HELLO with an INFO
// announcing lim.
func acceptHello(l *unixsock.Listener, lim *wire.Limits) (*unixsock.Conn, *wire.Reader, error) {
	return acceptHelloFD(l, lim, 0)
}

// acceptHelloFD is acceptHello announcing max_fd_payload fdPayload too.
func acceptHelloFD(l *unixsock.Listener, lim *wire.Limits, fdPayload uint64) (*unixsock.Conn, *wire.Reader, error) {
	sock, err := l.Accept()
	if err != nil {
		return nil, nil, err
	}
	in := wire.NewReader(sock, lim)
	if _, err := in.Next(nil); err != nil { // HELLO
		sock.Close()
		return nil, nil, err
	}
	info, _ := wire.AppendBody(nil, &wire.Info{Version: wire.Version, ConnID: 1,
		MaxPayload: lim.MaxPayload, MaxHeaders: lim.MaxHeaders, MaxFDs: lim.MaxFDs, MaxSubs: 100, MaxFDPayload: fdPayload})
	if _, err := sock.Write(wire.AppendControl(nil, wire.OpInfo, 0, info)); err != nil {
		sock.Close()
		return nil, nil, err
	}
	return sock, in, nil
}

// expect reads the client's next frame and fails unless it is op.
func (fb *fakeBus) expect(op wire.Op) wire.Frame {
	fb.t.Helper()
	f, err := fb.in.Next(nil)
	if err != nil {
		fb.t.Fatalf("fake broker waiting for %v: %v", op, err)
	}
	if f.Op != op {
		fb.t.Fatalf("fake broker got %v; want %v", f.Op, op)
	}
	return f
}

// write sends frames to the client.
func (fb *fakeBus) write(frames ...[]byte) {
	fb.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	if _, err := fb.sock.Write(b); err != nil {
		fb.t.Fatalf("fake broker writing: %v", err)
	}
}

// msg encodes a MSG for subscription sid from connection conn (0: the
// broker itself).
func msg(sid uint32, conn uint64, topic string, hdrs wire.Headers, payload string) []byte {
	pub := wire.Frame{Topic: []byte(topic), Headers: hdrs, Payload: []byte(payload)}
	pub.TopicLen, pub.HdrLen, pub.PayloadLen = uint16(len(topic)), uint32(len(hdrs)), uint32(len(payload))
	return wire.AppendMsg(nil, sid, &wire.Origin{Conn: conn, PID: 1}, &pub)
}

// msgFD encodes a MSG for subscription sid whose payload is in a memfd
// of size bytes (the first of nfds descriptors, sent with writeFDs).
func msgFD(sid uint32, topic string, size uint64, nfds int) []byte {
	pub := wire.Frame{Topic: []byte(topic), Payload: binary.BigEndian.AppendUint64(nil, size)}
	pub.TopicLen, pub.PayloadLen = uint16(len(topic)), wire.PayloadFDLen
	pub.Flags, pub.NFDs = wire.PubPayloadFD, uint8(nfds)
	return wire.AppendMsg(nil, sid, &wire.Origin{Conn: 7, PID: 1}, &pub)
}

// writeFDs sends frame to the client with descriptors fds.
func (fb *fakeBus) writeFDs(frame []byte, fds ...int) {
	fb.t.Helper()
	if _, err := fb.sock.WriteWithFDs(frame, fds); err != nil {
		fb.t.Fatalf("fake broker writing: %v", err)
	}
}

// gap encodes the broker's gap notice for subscription sid on pattern.
func gap(sid uint32, pattern string, lost int, reason string) []byte {
	h := wire.AppendField(nil, wire.DroppedHeader, strconv.Itoa(lost))
	h = wire.AppendField(h, wire.ReasonHeader, reason)
	return msg(sid, 0, pattern, h, "")
}

// pong answers the client's next frame, which must be a PING.
func (fb *fakeBus) pong() {
	fb.t.Helper()
	p := fb.expect(wire.OpPing)
	fb.write(wire.AppendControl(nil, wire.OpPong, p.ID, nil))
}

// deafSubscriber connects to the broker at path by hand, subscribes to
// pattern (in group, if not ""), waits until the broker has the
// subscription, and from then on never reads: a responder or listener
// that has fallen as far behind as one can.
func deafSubscriber(t *testing.T, path, pattern, group string) {
	t.Helper()
	sock, err := unixsock.Dial(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	sock.SetDeadline(time.Now().Add(10 * time.Second))
	hello, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: "deaf"})
	b := wire.AppendControl(nil, wire.OpHello, 0, hello)
	b = wire.AppendSub(b, 1, pattern, group, 0)
	b = wire.AppendControl(b, wire.OpPing, 1, nil)
	if _, err := sock.Write(b); err != nil {
		t.Fatal(err)
	}
	lim := wire.DefaultLimits
	in := wire.NewReader(sock, &lim)
	for {
		f, err := in.Next(nil)
		if err != nil {
			t.Fatalf("deaf subscriber's handshake: %v", err)
		}
		switch f.Op {
		case wire.OpErr:
			t.Fatalf("the broker refused the deaf subscriber: %s", f.Payload)
		case wire.OpPong:
			return
		}
	}
}
