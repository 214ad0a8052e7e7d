package bus

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// helloFrame is a well-formed HELLO, for tests to break.
func helloFrame(t testing.TB) []byte {
	t.Helper()
	body, err := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendControl(nil, wire.OpHello, 0, body)
}

// edited returns a copy of frame changed by edit.
func edited(frame []byte, edit func(b []byte)) []byte {
	b := bytes.Clone(frame)
	edit(b)
	return b
}

// headerOnly is a frame header with no sections after it: enough for a
// broker that refuses the header before it reads on.
func headerOnly(h wire.Header) []byte { return wire.AppendFrameHeader(nil, &h) }

// The first frame goes through the header checks every frame does (with
// HELLO's limits: payload 64 KiB, no headers, no descriptors), then is
// read whole, and only then is it required to be a HELLO; then the
// payload, then the version. Each refusal names frame 1 and its op when
// the op is known (PROTOCOL.md sections 4, 5 and 7).
func TestFirstFrameIsCheckedInOrder(t *testing.T) {
	hello := helloFrame(t)
	cases := []struct {
		name  string
		frame []byte
		code  wire.Code
		op    wire.Op
		text  string
	}{
		{"HELLO with version byte 2", edited(hello, func(b []byte) { b[0] = 2 }), wire.CodeBadVersion, wire.OpHello, "frame version 2"},
		{"PUB with version byte 2", edited(wire.AppendPub(nil, "a", "", nil, nil, 0), func(b []byte) { b[0] = 2 }), wire.CodeBadVersion, wire.OpPub, "frame version 2"},
		{"unknown op", edited(hello, func(b []byte) { b[1] = 77 }), wire.CodeUnknownOp, 0, "op 77"},
		{"HELLO with flags", edited(hello, func(b []byte) { b[2] = 1 }), wire.CodeBadFrame, wire.OpHello, "flags 0x1"},
		{"HELLO with nfds", edited(hello, func(b []byte) { b[3] = 1 }), wire.CodeBadFrame, wire.OpHello, "sections its op does not use"},
		{"HELLO with an id", edited(hello, func(b []byte) { b[19] = 5 }), wire.CodeBadFrame, wire.OpHello, "sections its op does not use"},
		{"HELLO with a topic", headerOnly(wire.Header{Op: wire.OpHello, TopicLen: 1, PayloadLen: 10}), wire.CodeBadFrame, wire.OpHello, "sections its op does not use"},
		{"HELLO over 64 KiB", headerOnly(wire.Header{Op: wire.OpHello, PayloadLen: 64<<10 + 1}), wire.CodeTooLarge, wire.OpHello, "payload of 65537 bytes; the limit is 65536"},
		{"PUB over HELLO's payload limit", headerOnly(wire.Header{Op: wire.OpPub, TopicLen: 1, PayloadLen: 64<<10 + 1}), wire.CodeTooLarge, wire.OpPub, "limit is 65536"},
		{"PUB with headers", wire.AppendPub(nil, "a", "", wire.AppendField(nil, "k", "v"), nil, 0), wire.CodeTooLarge, wire.OpPub, "headers of 6 bytes; the limit is 0"},
		{"PUB with nfds", wire.AppendPub(nil, "a", "", nil, nil, 1), wire.CodeTooManyFDs, wire.OpPub, "carries 1 fds; the limit is 0"},
		{"PUB", wire.AppendPub(nil, "a", "", nil, []byte("b"), 0), wire.CodeHandshake, wire.OpPub, "must be HELLO, not PUB"},
		{"SUB", wire.AppendSub(nil, 1, "a", "", 0), wire.CodeHandshake, wire.OpSub, "must be HELLO, not SUB"},
		{"INFO", wire.AppendControl(nil, wire.OpInfo, 0, []byte{0x80}), wire.CodeHandshake, wire.OpInfo, "must be HELLO, not INFO"},
		{"PING", wire.AppendControl(nil, wire.OpPing, 1, nil), wire.CodeHandshake, wire.OpPing, "must be HELLO, not PING"},
		{"HELLO that is not a map", wire.AppendControl(nil, wire.OpHello, 0, []byte{0x01}), wire.CodeBadFrame, wire.OpHello, "HELLO payload is a msgpack integer"},
		{"HELLO of version 2", wire.AppendControl(nil, wire.OpHello, 0, mustBody(t, &wire.Hello{Version: 2})), wire.CodeBadVersion, wire.OpHello, "client speaks version 2"},
	}
	_, path := testBroker(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, path)
			c.send(tc.frame)
			if e := c.expectErr(tc.code, tc.text); e.Seq != 1 || e.Op != tc.op {
				t.Errorf("ERR names frame %d op %v; want frame 1 op %v", e.Seq, e.Op, tc.op)
			}
			c.expectClosed()
		})
	}
	stillServes(t, path)
}

func mustBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := wire.AppendBody(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The broker holds HELLO's payload to the rules of PROTOCOL.md section 4
// (wire.DecodeHello has the case by case tests): a refusal is bad frame,
// about frame 1, a HELLO.
func TestHelloPayloadIsStrict(t *testing.T) {
	_, path := testBroker(t, nil)
	good := mustBody(t, &wire.Hello{Version: 1})
	for _, tc := range []struct {
		name, text string
		payload    []byte
	}{
		{"trailing bytes", "goes on for 1 bytes after its map", append(bytes.Clone(good), 0xc0)},
		{"bin key", "keys must be str", []byte{0x81, 0xc4, 7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 1}},
		{"duplicate key", `the key "version" twice`, []byte{0x82, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 1, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 1}},
		{"nil version", "version is a msgpack nil", []byte{0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0xc0}},
		{"no version", "has no version", []byte{0x80}},
		{"name too long", "name is 256 bytes", mustBody(t, &wire.Hello{Version: 1, Name: string(make([]byte, 256))})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, path)
			c.send(wire.AppendControl(nil, wire.OpHello, 0, tc.payload))
			if e := c.expectErr(wire.CodeBadFrame, tc.text); e.Seq != 1 || e.Op != wire.OpHello {
				t.Errorf("ERR names frame %d op %v; want frame 1 HELLO", e.Seq, e.Op)
			}
			c.expectClosed()
		})
	}
}

// HELLO's payload limit is inclusive: a HELLO of exactly 64 KiB (an
// unknown key padding it out) is accepted. Larger than the read buffer,
// it is read in pieces, which are given back once it is decoded.
func TestHelloOfExactly64KiB(t *testing.T) {
	srv, path := testBroker(t, nil)
	head := []byte{0x82, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 1, 0xa3, 'p', 'a', 'd', 0xc6, 0, 0, 0, 0}
	pad := 64<<10 - len(head)
	binary.BigEndian.PutUint32(head[len(head)-4:], uint32(pad))
	payload := append(head, make([]byte, pad)...)
	c := dialRaw(t, path)
	c.send(wire.AppendControl(nil, wire.OpHello, 0, payload))
	if f := c.next(); f.Op != wire.OpInfo {
		var e wire.Error
		wire.DecodeBody(f.Payload, &e)
		t.Fatalf("a 64 KiB HELLO was answered with %v: %v", f.Op, &e)
	}
	c.sync()
	waitFor(t, "the connection to hold its fixed charge alone", func() bool { return srv.Stats().Memory == connMemory })
}

// The handshake timeout counts from the accept, and covers the whole
// HELLO: a client that sent nothing, or part of a HELLO, is refused with
// an ERR about no frame (seq 0, op 0).
func TestHandshakeTimeoutNamesNoFrame(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	hello := helloFrame(t)
	for _, sent := range [][]byte{nil, hello[:10], hello[:wire.HeaderLen+1]} {
		c := dialRaw(t, path)
		if len(sent) > 0 {
			c.send(sent)
		}
		if e := c.expectErr(wire.CodeHandshake, "no HELLO within 100ms"); e.Seq != 0 || e.Op != 0 {
			t.Errorf("after %d bytes: ERR names frame %d op %v; want 0 and 0", len(sent), e.Seq, e.Op)
		}
		c.expectClosed()
	}
}

// A client may send frames right after HELLO, without waiting for INFO:
// they are checked against the broker's limits, not HELLO's (this PUB
// has headers, which a first frame may not), and answered after INFO.
func TestFramesPipelinedAfterHello(t *testing.T) {
	_, path := testBroker(t, nil)
	c := dialRaw(t, path)
	b := helloFrame(t)
	b = wire.AppendSub(b, 1, "pipe.>", "", 0)
	b = wire.AppendControl(b, wire.OpPing, 7, nil)
	b = wire.AppendPub(b, "pipe.x", "", wire.AppendField(nil, "k", "v"), []byte("early"), 0)
	b = wire.AppendPub(b, "a..b", "", nil, nil, 0)
	c.send(b)
	if f := c.next(); f.Op != wire.OpInfo {
		t.Fatalf("got %v first; want INFO", f.Op)
	}
	if f := c.next(); f.Op != wire.OpPong || f.ID != 7 {
		t.Fatalf("got %v %d; want PONG 7", f.Op, f.ID)
	}
	f := c.next()
	if v, _ := f.Headers.Get("k"); f.Op != wire.OpMsg || f.ID != 1 || v != "v" || string(f.Payload) != "early" {
		t.Fatalf("got %v %d %q %q; want the pipelined message", f.Op, f.ID, v, f.Payload)
	}
	if e := c.expectErr(wire.CodeInvalidTopic, "a..b"); e.Seq != 5 || e.Op != wire.OpPub {
		t.Errorf("ERR names frame %d op %v; want frame 5 PUB", e.Seq, e.Op)
	}
}

// A second HELLO is a frame a client may not send after the handshake.
func TestSecondHelloIsRefused(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.send(helloFrame(t))
	if e := c.expectErr(wire.CodeUnknownOp, "HELLO is not a frame a client sends after the handshake"); e.Seq != 2 || e.Op != wire.OpHello {
		t.Errorf("ERR names frame %d op %v; want frame 2 HELLO", e.Seq, e.Op)
	}
	c.expectClosed()
}

// Connection ids count every connection the broker accepts, from 1: one
// it refuses at once, or that fails its handshake, uses its id up, and no
// id comes back when its connection closes.
func TestConnIDsCountEveryAccept(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.MaxConns = 1 })
	first := connectRaw(t, path)
	if first.info.ConnID != 1 {
		t.Fatalf("first connection has id %d; want 1", first.info.ConnID)
	}
	dialRaw(t, path).expectErr(wire.CodeTooManyConns, "limit of 1") // id 2
	first.sock.Close()
	waitFor(t, "the first connection to be gone", func() bool { return srv.Stats().Conns == 0 })
	rude := dialRaw(t, path) // id 3
	rude.send(wire.AppendControl(nil, wire.OpPing, 1, nil))
	rude.expectErr(wire.CodeHandshake, "must be HELLO")
	rude.expectClosed()
	waitFor(t, "the refused handshake to be gone", func() bool { return srv.Stats().Conns == 0 })
	if c := connectRaw(t, path); c.info.ConnID != 4 {
		t.Fatalf("fourth connection has id %d; want 4", c.info.ConnID)
	}
}
