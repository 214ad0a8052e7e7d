package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/unixsock"
)

func decode(t *testing.T, b []byte) Frame {
	t.Helper()
	h, err := DecodeHeader(b, &DefaultLimits)
	if err != nil {
		t.Fatalf("DecodeHeader: %v", err)
	}
	if h.Size() != len(b) {
		t.Fatalf("Size() = %d; frame is %d bytes", h.Size(), len(b))
	}
	f, err := DecodeFrame(b, h)
	if err != nil {
		t.Fatalf("DecodeFrame: %v", err)
	}
	return f
}

func TestPubRoundTrip(t *testing.T) {
	hdrs := AppendField(AppendField(nil, "Content-Type", "text/plain"), "k", "")
	b := AppendPub(nil, "a.b", "_INBOX.x.1", hdrs, []byte("hello"), 3)
	f := decode(t, b)
	if f.Op != OpPub || string(f.Topic) != "a.b" || string(f.Reply) != "_INBOX.x.1" ||
		string(f.Payload) != "hello" || f.NFDs != 3 || !bytes.Equal(f.Headers, hdrs) {
		t.Fatalf("got %+v", f)
	}
	if v, ok := f.Headers.Get("Content-Type"); !ok || v != "text/plain" {
		t.Fatalf("Get(Content-Type) = %q, %v", v, ok)
	}
}

func TestMsgRoundTrip(t *testing.T) {
	pub := decode(t, AppendPub(nil, "t", "", nil, []byte{1, 2, 3}, 1))
	o := Origin{Conn: 1<<40 + 7, PID: 4242, UID: 1000, GID: 100}
	f := decode(t, AppendMsg(nil, 77, &o, &pub))
	if f.Op != OpMsg || f.ID != 77 || f.Origin != o || string(f.Topic) != "t" ||
		!bytes.Equal(f.Payload, []byte{1, 2, 3}) || f.NFDs != 1 {
		t.Fatalf("got %+v", f)
	}
}

func TestSubAndControl(t *testing.T) {
	f := decode(t, AppendSub(nil, 9, "a.*", "workers", 0))
	if f.Op != OpSub || f.ID != 9 || string(f.Topic) != "a.*" || string(f.Reply) != "workers" {
		t.Fatalf("SUB: %+v", f)
	}
	f = decode(t, AppendControl(nil, OpPing, 5, nil))
	if f.Op != OpPing || f.ID != 5 || f.Size() != HeaderLen {
		t.Fatalf("PING: %+v", f)
	}
}

// The header layout is the contract of docs/PROTOCOL.md: pin it byte for byte.
func TestHeaderBytes(t *testing.T) {
	b := AppendPub(nil, "ab", "r", nil, []byte("xyz"), 2)
	want := []byte{
		1, 3, 0, 2, // version, op PUB, flags, nfds
		0, 2, 0, 1, // topic_len 2, reply_len 1
		0, 0, 0, 0, // hdr_len
		0, 0, 0, 3, // payload_len
		0, 0, 0, 0, // id
		'a', 'b', 'r', 'x', 'y', 'z',
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x\nwant % x", b, want)
	}
}

func TestDecodeHeaderRefusesBeforeAllocating(t *testing.T) {
	lim := Limits{MaxPayload: 1000, MaxHeaders: 100, MaxFDs: 4}
	base := AppendPub(nil, "a", "", nil, nil, 0)
	cases := []struct {
		name string
		edit func(b []byte)
		code Code
	}{
		{"version", func(b []byte) { b[0] = 2 }, CodeBadVersion},
		{"op zero", func(b []byte) { b[1] = 0 }, CodeUnknownOp},
		{"op 200", func(b []byte) { b[1] = 200 }, CodeUnknownOp},
		{"flags", func(b []byte) { b[2] = 0x80 }, CodeBadFrame},
		{"fds", func(b []byte) { b[3] = 5 }, CodeTooManyFDs},
		{"topic", func(b []byte) { b[4], b[5] = 0xff, 0xff }, CodeTooLarge},
		{"reply", func(b []byte) { b[6], b[7] = 0x10, 0 }, CodeTooLarge},
		{"headers", func(b []byte) { b[11] = 101 }, CodeTooLarge},
		{"payload 1 GiB", func(b []byte) { b[12] = 0x40 }, CodeTooLarge},
	}
	for _, c := range cases {
		b := bytes.Clone(base)
		c.edit(b)
		_, err := DecodeHeader(b, &lim)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, c.code) || !c.code.Fatal() {
			t.Errorf("%s: got %v; want code %v", c.name, err, c.code)
			continue
		}
		if e.Text == "" {
			t.Errorf("%s: error has no text naming the problem", c.name)
		}
	}
	if _, err := DecodeHeader(base[:HeaderLen-1], &lim); err != ErrShortFrame {
		t.Errorf("short header: %v", err)
	}
	if _, err := DecodeFrame(base[:HeaderLen], Header{Op: OpPub, PayloadLen: 5}); err != ErrShortFrame {
		t.Errorf("short frame: %v", err)
	}
}

func TestHeadersCheck(t *testing.T) {
	good := AppendField(AppendField(nil, "a", "1"), "Bus-Status", "503")
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, v := range good.All() {
		keys = append(keys, string(k)+"="+string(v))
	}
	if strings.Join(keys, ",") != "a=1,Bus-Status=503" {
		t.Fatalf("All() = %v", keys)
	}
	bad := map[string]Headers{
		"truncated":  good[:len(good)-1],
		"one byte":   {0},
		"empty key":  AppendField(nil, "", "v"),
		"space key":  AppendField(nil, "a b", "v"),
		"control":    AppendField(nil, "a\n", "v"),
		"long value": append(AppendField(nil, "k", ""), 0xff),
	}
	for name, h := range bad {
		if err := h.Check(); !errors.Is(err, CodeBadHeaders) {
			t.Errorf("%s: Check() = %v; want bad headers", name, err)
		}
	}
}

func TestBodies(t *testing.T) {
	in := Info{Version: 1, Server: "busd test", ConnID: 12, MaxPayload: 1 << 20, MaxHeaders: 4096, MaxFDs: 16, MaxSubs: 100}
	b, err := AppendBody(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	var out Info
	if err := DecodeBody(b, &out); err != nil || out != in {
		t.Fatalf("got %+v, %v", out, err)
	}
	e := Error{Code: CodeInvalidTopic, Text: `topic "a..b": token 2 is empty`, Seq: 7, Op: OpPub}
	b, _ = AppendBody(nil, &e)
	var e2 Error
	if err := DecodeBody(b, &e2); err != nil || e2 != e {
		t.Fatalf("got %+v, %v", e2, err)
	}
	if got := e2.Error(); got != `bus: invalid topic: topic "a..b": token 2 is empty (frame 7, PUB)` {
		t.Fatalf("Error() = %s", got)
	}
	if err := DecodeBody([]byte{0xc1}, &e2); !errors.Is(err, CodeBadFrame) {
		t.Fatalf("garbage body: %v", err)
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 4096)
	payload := make([]byte, 16)
	pub := AppendPub(nil, "a.b.c", "", nil, payload, 0)
	f := decode(t, pub)
	o := Origin{Conn: 1}
	allocs := testing.AllocsPerRun(100, func() {
		b := AppendPub(buf[:0], "a.b.c", "", nil, payload, 0)
		b = AppendMsg(b, 1, &o, &f)
		h, _ := DecodeHeader(b, &DefaultLimits)
		_, _ = DecodeFrame(b, h)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

func TestDecodeHeaderRefusesUnusedSections(t *testing.T) {
	cases := map[string][]byte{
		"UNSUB with topic":  {1, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9},
		"RECEIPT with id 0": {1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0},
		"SUB with id 0":     {1, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"SUB with payload":  {1, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1},
		"SUB with fds":      {1, 4, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		"PING with topic":   {1, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		"HELLO with fds":    {1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, b := range cases {
		if _, err := DecodeHeader(b, &DefaultLimits); !errors.Is(err, CodeBadFrame) {
			t.Errorf("%s: got %v; want bad frame", name, err)
		}
	}
}

func TestReaderRawIsTheFrame(t *testing.T) {
	a, b, err := unixsock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	frames := [][]byte{
		AppendPub(nil, "a.b", "r", AppendField(nil, "k", "v"), []byte("one"), 0),
		AppendControl(nil, OpPing, 4, nil),
		AppendPub(nil, "c", "", nil, bytes.Repeat([]byte("x"), 5000), 0),
	}
	go a.Write(bytes.Join(frames, nil))
	r := NewReader(b, &DefaultLimits)
	for i, want := range frames {
		if _, err := r.Next(nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Raw(), want) {
			t.Fatalf("frame %d: Raw() differs from what was sent", i)
		}
	}
}

func TestReaderKeepHandsOverLargeFrames(t *testing.T) {
	a, b, err := unixsock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	big := bytes.Repeat([]byte("B"), 3*maxReadBuf)
	frames := [][]byte{
		AppendPub(nil, "small", "", nil, []byte("s"), 0),
		AppendPub(nil, "big", "", nil, big, 0),
		AppendPub(nil, "after", "", nil, []byte("overwrites?"), 0),
	}
	go func() {
		for _, f := range frames { // one at a time: the big frame ends its read
			a.Write(f)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r := NewReader(b, &DefaultLimits)
	if _, err := r.Next(nil); err != nil {
		t.Fatal(err)
	}
	if r.Keep() {
		t.Fatal("Keep took a small frame's shared buffer")
	}
	f, err := r.Next(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Keep() {
		t.Fatal("Keep refused a frame with a buffer of its own")
	}
	kept := f.Payload
	if f, err = r.Next(nil); err != nil || string(f.Payload) != "overwrites?" {
		t.Fatalf("frame after the kept one: %q, %v", f.Payload, err)
	}
	if !bytes.Equal(kept, big) {
		t.Fatal("the Reader wrote into the bytes it handed over")
	}
}

func TestReceiptRoundTrip(t *testing.T) {
	b := AppendReceipt(nil, 7, Receipt{Delivered: 3, Dropped: 1})
	h, err := DecodeHeader(b, &DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if h.Op != OpReceipt || h.ID != 7 || h.Size() != len(b) {
		t.Fatalf("header %+v of a %d-byte frame", h, len(b))
	}
	r, err := DecodeReceipt(b[HeaderLen:])
	if err != nil || r != (Receipt{Delivered: 3, Dropped: 1}) {
		t.Fatalf("DecodeReceipt: %+v, %v", r, err)
	}
	if _, err := DecodeReceipt(b[HeaderLen : len(b)-1]); !errors.Is(err, CodeBadFrame) {
		t.Fatalf("a 7-byte receipt: %v, want bad frame", err)
	}
	pub := AppendPub(nil, "a", "", nil, nil, 0)
	SetID(pub, 9)
	if h, err := DecodeHeader(pub, &DefaultLimits); err != nil || h.ID != 9 {
		t.Fatalf("a PUB with an id: %+v, %v", h, err)
	}
}
