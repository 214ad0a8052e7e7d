package wire

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoders: they must never panic,
// never accept a frame over the limits, DecodeHeader must agree with the
// full check (checkedHeader), and re-encoding an accepted PUB or MSG must
// give back the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(AppendPub(nil, "a.b", "r", AppendField(nil, "k", "v"), []byte("x"), 1))
	f.Add(AppendSub(nil, 1, "a.>", "g", 0))
	f.Add(AppendControl(nil, OpPing, 3, nil))
	fdPub := AppendPub(nil, "big.one", "", nil, []byte{0, 0, 0, 0, 0x40, 0, 0, 0}, 1)
	fdPub[2] = PubPayloadFD
	f.Add(fdPub)
	noFD := bytes.Clone(fdPub)
	noFD[3] = 0
	f.Add(noFD) // the flag without a descriptor: bad frame
	fdMsg := AppendMsg(nil, 1, &Origin{Conn: 2}, &Frame{Header: Header{Op: OpPub, Flags: PubPayloadFD, NFDs: 1, TopicLen: 1, PayloadLen: 8},
		Topic: []byte("t"), Payload: make([]byte, 8)})
	f.Add(fdMsg)
	lim := Limits{MaxPayload: 1 << 16, MaxHeaders: 1 << 12, MaxFDs: 8}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsChecked(t, b, &lim)
		h, err := DecodeHeader(b, &lim)
		if err != nil {
			return
		}
		if h.PayloadLen > lim.MaxPayload || h.HdrLen > lim.MaxHeaders || h.NFDs > lim.MaxFDs {
			t.Fatalf("accepted %+v over %+v", h, lim)
		}
		fr, err := DecodeFrame(b, h)
		if err != nil {
			if len(b) >= h.Size() {
				t.Fatalf("DecodeFrame refused a whole frame: %v", err)
			}
			return
		}
		_ = fr.Headers.Check()
		for range fr.Headers.All() {
		}
		var again []byte
		switch h.Op {
		case OpPub:
			again = AppendPub(nil, string(fr.Topic), string(fr.Reply), fr.Headers, fr.Payload, int(fr.NFDs))
			SetID(again, fr.ID)
		case OpMsg:
			again = AppendMsg(nil, fr.ID, &fr.Origin, &fr)
		default:
			return
		}
		same := h.Flags == 0 || h.Op == OpMsg // AppendMsg carries a MSG's flags
		if same && !bytes.Equal(again, b[:h.Size()]) {
			t.Fatalf("re-encoding differs:\n% x\n% x", again, b[:h.Size()])
		}
	})
}

// FuzzDecodeHello feeds arbitrary payloads to DecodeHello: it must never
// panic; a payload it accepts is exactly one map, so every shorter prefix
// of it and it with one more byte are refused; and where the codec also
// decodes an accepted payload, the two agree on version and name.
func FuzzDecodeHello(f *testing.F) {
	good, _ := AppendBody(nil, &Hello{Version: 1, Name: "fuzz"})
	f.Add(good)
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{0x82, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01, 0xa1, 'x', 0x92, 0xc0, 0x81, 0xa0, 0xd4, 1, 2})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHello(b)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || we.Code != CodeBadFrame {
				t.Fatalf("refused with %v; want bad frame", err)
			}
			return
		}
		if len(h.Name) > MaxNameLen {
			t.Fatalf("accepted a name of %d bytes", len(h.Name))
		}
		for n := range len(b) {
			if _, err := DecodeHello(b[:n]); err == nil {
				t.Fatalf("accepted %x and its prefix of %d bytes", b, n)
			}
		}
		if _, err := DecodeHello(append(bytes.Clone(b), 0xc0)); err == nil {
			t.Fatalf("accepted %x with a byte after it", b)
		}
		var c Hello
		if DecodeBody(b, &c) == nil && c != h {
			t.Fatalf("DecodeHello read %+v, the codec %+v", h, c)
		}
	})
}
