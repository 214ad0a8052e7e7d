package bus

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// stillServes checks that the broker carries on for other clients.
func stillServes(t *testing.T, path string) {
	t.Helper()
	c := connectRaw(t, path)
	c.sub(1, "alive", "")
	c.pub("alive", "yes")
	if f := c.next(); f.Op != wire.OpMsg || string(f.Payload) != "yes" {
		t.Fatalf("broker stopped serving: got %v", f.Op)
	}
}

func TestNonFatalErrorsKeepTheConnection(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.MaxSubs = 2 })
	c := connectRaw(t, path)
	cases := []struct {
		frame []byte
		code  wire.Code
		text  string
	}{
		{wire.AppendPub(nil, "a..b", "", nil, nil, 0), wire.CodeInvalidTopic, `topic "a..b": token 2 is empty`},
		{wire.AppendPub(nil, "a.*", "", nil, nil, 0), wire.CodeInvalidTopic, "wildcard"},
		{wire.AppendPub(nil, "a", "r..", nil, nil, 0), wire.CodeInvalidTopic, "reply topic"},
		{wire.AppendPub(nil, "$SYS.x", "", nil, nil, 0), wire.CodeReservedTopic, "belong to the broker"},
		{wire.AppendPub(nil, "a", "", wire.Headers{0, 9, 'x'}, nil, 0), wire.CodeBadHeaders, "overruns"},
		{wire.AppendSub(nil, 1, "a.>.b", "", 0), wire.CodeInvalidPattern, "not the last token"},
		{wire.AppendSub(nil, 1, "a", "bad group", 0), wire.CodeInvalidGroup, "forbidden character U+0020"},
		{wire.AppendSub(nil, 1, "a", ">", 0), wire.CodeInvalidGroup, `group ">": is a wildcard`},
		{wire.AppendSub(nil, 1, "a", "g\u2060", 0), wire.CodeInvalidGroup, "forbidden character U+2060"},
		{wire.AppendPub(nil, "a.b\u200bc", "", nil, nil, 0), wire.CodeInvalidTopic, "token 2 has a forbidden character U+200B"},
		{wire.AppendSub(nil, 1, "\ufeff.>", "", 0), wire.CodeInvalidPattern, "token 1 has a forbidden character U+FEFF"},
		{wire.AppendSub(nil, 1, "ok", "", 0), 0, ""},
		{wire.AppendSub(nil, 1, "ok2", "", 0), wire.CodeDuplicateSub, "id 1"},
		{wire.AppendSub(nil, 2, "ok2", "", 0), 0, ""},
		{wire.AppendSub(nil, 3, "ok3", "", 0), wire.CodeTooManySubs, "limit"},
	}
	seq := uint64(1) // HELLO
	for _, tc := range cases {
		c.send(tc.frame)
		seq++
		if tc.code == 0 {
			continue
		}
		e := c.expectErr(tc.code, tc.text)
		if e.Seq != seq {
			t.Errorf("ERR %v names frame %d; want %d", tc.code, e.Seq, seq)
		}
	}
	c.sync()
	stillServes(t, path)
}

func TestFatalErrorsCloseOnlyThatConnection(t *testing.T) {
	hdr := func(edit func(b []byte)) []byte {
		b := wire.AppendPub(nil, "t", "", nil, []byte("x"), 0)
		edit(b)
		return b
	}
	cases := []struct {
		name  string
		frame []byte
		code  wire.Code
		op    wire.Op // the op the ERR names
		text  string
	}{
		{"version", hdr(func(b []byte) { b[0] = 9 }), wire.CodeBadVersion, wire.OpPub, "version 9"},
		{"op", hdr(func(b []byte) { b[1] = 77 }), wire.CodeUnknownOp, 0, "op 77"},
		{"client sends INFO", wire.AppendControl(nil, wire.OpInfo, 0, nil), wire.CodeUnknownOp, wire.OpInfo, "INFO"},
		{"flags", hdr(func(b []byte) { b[2] = 0x80 }), wire.CodeBadFrame, wire.OpPub, "flags"},
		{"payload-fd flag without a descriptor", hdr(func(b []byte) { b[2] = wire.PubPayloadFD }), wire.CodeBadFrame, wire.OpPub, "needs at least 1 fd and exactly 8 bytes"},
		{"payload over the limit", hdr(func(b []byte) { binary.BigEndian.PutUint32(b[12:], 1<<30) }), wire.CodeTooLarge, wire.OpPub, "payload of 1073741824 bytes"},
		{"fds over the limit", hdr(func(b []byte) { b[3] = 200 }), wire.CodeTooManyFDs, wire.OpPub, "200 fds"},
		{"fds announced, none sent", hdr(func(b []byte) { b[3] = 2 }), wire.CodeMissingFDs, wire.OpPub, "announces 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, path := testBroker(t, nil)
			c := connectRaw(t, path)
			c.send(tc.frame)
			if e := c.expectErr(tc.code, tc.text); e.Seq != 2 || e.Op != tc.op {
				t.Errorf("ERR names frame %d op %v; want frame 2 op %v", e.Seq, e.Op, tc.op)
			}
			c.expectClosed()
			stillServes(t, path)
		})
	}
}

func TestHandshakeErrors(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	silent := dialRaw(t, path)
	silent.expectErr(wire.CodeHandshake, "no HELLO within 100ms")
	silent.expectClosed()

	rude := dialRaw(t, path)
	rude.pub("a", "b")
	if e := rude.expectErr(wire.CodeHandshake, "must be HELLO, not PUB"); e.Seq != 1 || e.Op != wire.OpPub {
		t.Errorf("ERR names frame %d op %v; want frame 1 PUB", e.Seq, e.Op)
	}
	rude.expectClosed()

	future := dialRaw(t, path)
	body, _ := wire.AppendBody(nil, &wire.Hello{Version: 99})
	future.send(wire.AppendControl(nil, wire.OpHello, 0, body))
	future.expectErr(wire.CodeBadVersion, "version 99")

	flagged := dialRaw(t, path) // a first frame whose header is already wrong
	body, _ = wire.AppendBody(nil, &wire.Hello{Version: 1})
	hello := wire.AppendControl(nil, wire.OpHello, 0, body)
	hello[2] = 1
	flagged.send(hello)
	if e := flagged.expectErr(wire.CodeBadFrame, "flags"); e.Seq != 1 || e.Op != wire.OpHello {
		t.Errorf("ERR names frame %d op %v; want frame 1 HELLO", e.Seq, e.Op)
	}

	garbage := dialRaw(t, path)
	garbage.send(wire.AppendControl(nil, wire.OpHello, 0, []byte{0xc1}))
	garbage.expectErr(wire.CodeBadFrame, "HELLO payload is not well-formed msgpack")
	stillServes(t, path)
}

// A peer that sends descriptors no frame claims cannot make the broker hoard
// them: past the limit it is disconnected and every descriptor closed.
func TestUnclaimedDescriptorsAreBounded(t *testing.T) {
	_, path := testBroker(t, nil)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := countFDs(t)
	c := connectRaw(t, path)
	fds := make([]int, 200)
	for i := range fds {
		fds[i] = int(f.Fd())
	}
	for range 3 {
		c.send(wire.AppendControl(nil, wire.OpPing, 1, nil), fds...)
	}
	for {
		fr := c.next()
		if fr.Op == wire.OpErr {
			var e wire.Error
			wire.DecodeBody(fr.Payload, &e)
			if e.Code != wire.CodeTooManyFDs || !strings.Contains(e.Text, "no frame has claimed") {
				t.Fatalf("got %v", &e)
			}
			// HELLO and two PINGs were handled; the read that brought the
			// third PING brought the descriptors one too many.
			about(t, e, 4, 0)
			break
		}
	}
	c.expectClosed()
	c.sock.Close()
	waitFDs(t, base)
	stillServes(t, path)
}

// A peer that vanishes in the middle of a frame loses only itself.
func TestPeerVanishesMidFrame(t *testing.T) {
	_, path := testBroker(t, nil)
	base := countFDs(t)
	for _, cut := range []int{3, wire.HeaderLen, wire.HeaderLen + 2} {
		c := connectRaw(t, path)
		frame := wire.AppendPub(nil, "topic", "", nil, bytes.Repeat([]byte("x"), 100), 0)
		c.send(frame[:cut])
		c.sock.Close()
	}
	waitFDs(t, base)
	stillServes(t, path)
}

// waitFDs waits for the process's descriptor count to come back to want:
// the broker closes a connection's descriptors when its goroutines finish.
func waitFDs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for countFDs(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("open descriptors: %d; want %d", countFDs(t), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
