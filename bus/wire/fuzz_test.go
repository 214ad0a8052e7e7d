package wire

import (
	"bytes"
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
		case OpMsg:
			again = AppendMsg(nil, fr.ID, &fr.Origin, &fr)
		default:
			return
		}
		if h.Flags == 0 && !bytes.Equal(again, b[:h.Size()]) {
			t.Fatalf("re-encoding differs:\n% x\n% x", again, b[:h.Size()])
		}
	})
}
