package wire

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// checkedHeader is DecodeHeader as it was before its fast test: every
// header through check. The fast test must give the same results.
func checkedHeader(b []byte, lim *Limits) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShortFrame
	}
	h := Header{
		Op:         Op(b[1]),
		Flags:      b[2],
		NFDs:       b[3],
		TopicLen:   binary.BigEndian.Uint16(b[4:]),
		ReplyLen:   binary.BigEndian.Uint16(b[6:]),
		HdrLen:     binary.BigEndian.Uint32(b[8:]),
		PayloadLen: binary.BigEndian.Uint32(b[12:]),
		ID:         binary.BigEndian.Uint32(b[16:]),
	}
	if err := h.check(b[0], lim); err != nil {
		if h.Op.Known() {
			err.Op = h.Op
		}
		return h, err
	}
	return h, nil
}

// sameAsChecked fails t if DecodeHeader and checkedHeader differ on b, and
// reports whether b's header was accepted.
func sameAsChecked(t *testing.T, b []byte, lim *Limits) bool {
	t.Helper()
	h, err := DecodeHeader(b, lim)
	wh, werr := checkedHeader(b, lim)
	if h != wh || !reflect.DeepEqual(err, werr) {
		t.Fatalf("header % x under %+v:\ngot  %+v, %v\nwant %+v, %v", b, *lim, h, err, wh, werr)
	}
	return err == nil
}

// headerBytes encodes a header with the given first bytes and fields.
func headerBytes(version, op, flags, nfds byte, topic, reply uint16, hdrs, payload, id uint32) []byte {
	b := []byte{version, op, flags, nfds}
	b = binary.BigEndian.AppendUint16(b, topic)
	b = binary.BigEndian.AppendUint16(b, reply)
	b = binary.BigEndian.AppendUint32(b, hdrs)
	b = binary.BigEndian.AppendUint32(b, payload)
	return binary.BigEndian.AppendUint32(b, id)
}

func TestDecodeHeaderAgreesWithCheck(t *testing.T) {
	lim := Limits{MaxPayload: 1000, MaxHeaders: 100, MaxFDs: 4}
	accepted := 0
	// Every op byte with every combination of zero and non-zero fields,
	// under every kind of version and flags byte.
	for op := range 256 {
		for p := range 1 << 6 {
			bit := func(i int, v uint32) uint32 { return v * uint32(p>>i&1) }
			for _, vf := range [][2]byte{{Version, 0}, {0, 0}, {2, 0}, {0xff, 0}, {Version, 1}, {Version, 2}, {Version, 3}, {Version, 0x80}} {
				b := headerBytes(vf[0], byte(op), vf[1], byte(bit(0, 1)), uint16(bit(1, 1)), uint16(bit(2, 1)),
					bit(3, 1), bit(4, 1), bit(5, 1))
				if sameAsChecked(t, b, &lim) {
					accepted++
				}
			}
		}
	}
	// Each op's valid shapes, with the fields each limit bounds just
	// within and just over it.
	for op := OpHello; op.Known(); op++ {
		for _, fds := range []byte{0, 4, 5, 255} {
			for _, n := range []uint16{0, 1, MaxTopicLen, MaxTopicLen + 1, 0xffff} {
				for _, hdrs := range []uint32{0, 100, 101, 1 << 31} {
					for _, pay := range []uint32{0, 1000, 1001, ^uint32(0)} {
						for _, id := range []uint32{0, 1, ^uint32(0)} {
							if sameAsChecked(t, headerBytes(Version, byte(op), 0, fds, n, 0, hdrs, pay, id), &lim) {
								accepted++
							}
							if sameAsChecked(t, headerBytes(Version, byte(op), 0, 0, 0, n, hdrs, pay, id), &lim) {
								accepted++
							}
						}
					}
				}
			}
		}
	}
	// Random headers, mostly made of valid parts.
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vs ...uint32) uint32 {
		if rng.IntN(8) == 0 {
			return rng.Uint32()
		}
		return vs[rng.IntN(len(vs))]
	}
	for range 200_000 {
		b := headerBytes(byte(pick(Version)), byte(pick(uint32(OpPub), uint32(OpMsg), uint32(OpSub), uint32(OpPing))),
			byte(pick(0, 0, 2, 3)), byte(pick(0, 1, 4, 5)), uint16(pick(0, 5, MaxTopicLen, MaxTopicLen+1)),
			uint16(pick(0, 5, MaxTopicLen)), pick(0, 10, 100, 101), pick(0, 8, 8, 16, 1000, 1001), pick(0, 1, 7))
		if sameAsChecked(t, b, &lim) {
			accepted++
		}
	}
	sameAsChecked(t, make([]byte, HeaderLen-1), &lim)
	if accepted < 1000 {
		t.Fatalf("only %d headers accepted: the test hardly covers the fast path", accepted)
	}
}

// A PUB or MSG with the payload-in-a-descriptor flag carries at least
// one descriptor and a payload section of exactly 8 bytes (the memfd's
// size); anything else is a fatal bad frame, found by the header alone.
func TestPayloadFDFlagShape(t *testing.T) {
	lim := Limits{MaxPayload: 1000, MaxHeaders: 100, MaxFDs: 4}
	for _, tc := range []struct {
		op         Op
		flags      uint8
		nfds       byte
		payload    uint32
		id         uint32
		ok         bool
		errContain string
	}{
		{OpPub, PubPayloadFD, 1, PayloadFDLen, 0, true, ""},
		{OpPub, PubPayloadFD, 4, PayloadFDLen, 7, true, ""},
		{OpPub, PubPayloadFD | PubRetain, 1, PayloadFDLen, 0, true, ""}, // refused later, as retain refused
		{OpMsg, MsgPayloadFD, 1, PayloadFDLen, 1, true, ""},
		{OpMsg, MsgPayloadFD | MsgRetained, 2, PayloadFDLen, 1, true, ""},
		{OpPub, PubPayloadFD, 0, PayloadFDLen, 0, false, "0 fds"},
		{OpPub, PubPayloadFD, 1, 0, 0, false, "payload section of 0 bytes"},
		{OpPub, PubPayloadFD, 1, 7, 0, false, "7 bytes"},
		{OpPub, PubPayloadFD, 1, 9, 0, false, "9 bytes"},
		{OpPub, PubPayloadFD, 5, PayloadFDLen, 0, false, "carries 5 fds"}, // too many fds, after the shape
		{OpMsg, MsgPayloadFD, 0, PayloadFDLen, 1, false, "0 fds"},
		{OpMsg, MsgPayloadFD, 1, 100, 1, false, "100 bytes"},
		{OpPub, 0, 0, PayloadFDLen, 0, true, ""}, // 8 inline bytes without the flag are just a payload
	} {
		b := headerBytes(Version, byte(tc.op), tc.flags, tc.nfds, 1, 0, 0, tc.payload, tc.id)
		if ok := sameAsChecked(t, b, &lim); ok != tc.ok {
			t.Fatalf("%v flags %#x nfds %d payload %d: accepted %v; want %v", tc.op, tc.flags, tc.nfds, tc.payload, ok, tc.ok)
		}
		if tc.ok {
			continue
		}
		_, err := DecodeHeader(b, &lim)
		we, _ := err.(*Error)
		want := CodeBadFrame
		if tc.nfds > lim.MaxFDs {
			want = CodeTooManyFDs
		}
		if we == nil || we.Code != want || !we.Code.Fatal() || !strings.Contains(we.Text, tc.errContain) {
			t.Fatalf("%v flags %#x nfds %d payload %d: %v; want %v naming %q", tc.op, tc.flags, tc.nfds, tc.payload, err, want, tc.errContain)
		}
	}
}

// The MSG that delivers a PUB with its payload in a descriptor keeps the
// flag; the retain flag of a live PUB does not reach it.
func TestMsgCarriesPayloadFDFlag(t *testing.T) {
	o := Origin{Conn: 1}
	pub := Header{Op: OpPub, Flags: PubPayloadFD, NFDs: 2, TopicLen: 1, PayloadLen: PayloadFDLen}
	b := AppendMsgHead(nil, 5, &o, &pub)
	if b[2] != MsgPayloadFD || b[3] != 2 {
		t.Fatalf("MSG flags %#x nfds %d; want %#x and 2", b[2], b[3], MsgPayloadFD)
	}
	pub.Flags = PubRetain | PubPayloadFD
	if b := AppendMsgHead(nil, 5, &o, &pub); b[2] != MsgRetained|MsgPayloadFD {
		t.Fatalf("MSG flags %#x; want both bits a frame of the broker's may set", b[2])
	}
}

// The Reader's frame must not depend on what it held before: a MSG's
// origin is cleared by the PUB after it, for example.
func TestDecodeFrameIntoOverwrites(t *testing.T) {
	pub := decode(t, AppendPub(nil, "t", "r", AppendField(nil, "k", "v"), []byte("p"), 2))
	o := Origin{Conn: 9, PID: 8, UID: 7, GID: 6}
	frames := [][]byte{
		AppendMsg(nil, 3, &o, &pub),
		AppendPub(nil, "a.b", "", nil, nil, 0),
		AppendSub(nil, 4, "x.>", "g", 0),
		AppendMsg(nil, 5, &o, &pub),
	}
	var f Frame
	for i, b := range frames {
		h, err := DecodeHeader(b, &DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeFrameInto(&f, b, &h); err != nil {
			t.Fatal(err)
		}
		if want := decode(t, b); !reflect.DeepEqual(f, want) {
			t.Fatalf("frame %d: got %+v; want %+v", i, f, want)
		}
	}
}
