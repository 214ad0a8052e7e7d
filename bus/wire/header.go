package wire

import (
	"encoding/binary"
	"fmt"
)

// Header is the fixed part of every frame:
//
//	offset size field
//	0      1    version     Version
//	1      1    op          Op
//	2      1    flags       per op (SubFlags for SUB); 0 for other ops
//	3      1    nfds        fds that travel with this frame
//	4      2    topic_len   topic section bytes
//	6      2    reply_len   reply section bytes (SUB: queue group)
//	8      4    hdr_len     headers section bytes
//	12     4    payload_len payload section bytes
//	16     4    id          subscription id (SUB, UNSUB, MSG), ping id (PING, PONG), else 0
//
// All fields are big-endian.
type Header struct {
	Op         Op
	Flags      uint8
	NFDs       uint8
	TopicLen   uint16
	ReplyLen   uint16
	HdrLen     uint32
	PayloadLen uint32
	ID         uint32
}

// Size returns the length of the whole frame the header starts.
func (h *Header) Size() int {
	n := HeaderLen + int(h.TopicLen) + int(h.ReplyLen) + int(h.HdrLen) + int(h.PayloadLen)
	if h.Op == OpMsg {
		n += OriginLen
	}
	return n
}

// AppendFrameHeader appends h's encoding to dst.
func AppendFrameHeader(dst []byte, h *Header) []byte {
	dst = append(dst, Version, byte(h.Op), h.Flags, h.NFDs)
	dst = binary.BigEndian.AppendUint16(dst, h.TopicLen)
	dst = binary.BigEndian.AppendUint16(dst, h.ReplyLen)
	dst = binary.BigEndian.AppendUint32(dst, h.HdrLen)
	dst = binary.BigEndian.AppendUint32(dst, h.PayloadLen)
	return binary.BigEndian.AppendUint32(dst, h.ID)
}

// DecodeHeader decodes the header at the start of b and checks it against
// the format and lim, so that the caller can trust Size before reading or
// allocating the rest of the frame. The error is an *Error with a fatal code.
func DecodeHeader(b []byte, lim *Limits) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShortFrame
	}
	var h Header
	if err := decodeHeaderInto(&h, b, lim); err != nil {
		return h, err
	}
	return h, nil
}

// decodeHeaderInto is DecodeHeader into h, for a b of at least HeaderLen
// bytes. It is the Reader's hot path, run on every frame: a well-formed
// header passes one combined test, and only a header that fails it goes
// through check, which works out what exactly is wrong.
func decodeHeaderInto(h *Header, b []byte, lim *Limits) *Error {
	b = b[:HeaderLen]
	h.Op = Op(b[1])
	h.Flags = b[2]
	h.NFDs = b[3]
	h.TopicLen = binary.BigEndian.Uint16(b[4:])
	h.ReplyLen = binary.BigEndian.Uint16(b[6:])
	h.HdrLen = binary.BigEndian.Uint32(b[8:])
	h.PayloadLen = binary.BigEndian.Uint32(b[12:])
	h.ID = binary.BigEndian.Uint32(b[16:])
	r := &headerRules[b[1]&15] // &15: no bounds check
	if binary.LittleEndian.Uint64(b)&r.mask0^r.want0|binary.LittleEndian.Uint64(b[8:])&r.zero1 == 0 &&
		h.ID&r.zeroID == 0 && (h.ID != 0 || !r.needID) &&
		(h.Flags&r.fdPayload == 0 || h.NFDs != 0 && h.PayloadLen == PayloadFDLen) &&
		h.TopicLen <= MaxTopicLen && h.ReplyLen <= MaxTopicLen &&
		h.PayloadLen <= lim.MaxPayload && h.HdrLen <= lim.MaxHeaders && h.NFDs <= lim.MaxFDs {
		return nil
	}
	return h.refuse(b[0], lim)
}

// refuse is decodeHeaderInto's slow path: the error for a header that
// failed the fast test, as DecodeHeader has always given it. It would
// return nil for a good header that failed, but none does: the two tests
// agree (TestDecodeHeaderAgreesWithCheck).
func (h *Header) refuse(version byte, lim *Limits) *Error {
	err := h.check(version, lim)
	if err != nil && h.Op.Known() {
		err.Op = h.Op
	}
	return err
}

// check applies the format's rules and lim to a decoded header.
func (h *Header) check(version byte, lim *Limits) *Error {
	switch {
	case version != Version:
		return Errorf(CodeBadVersion, "frame version %d, this broker speaks %d", version, Version)
	case !h.Op.Known():
		return Errorf(CodeUnknownOp, "op %d", h.Op)
	case h.Flags&^opShapes[h.Op].flags != 0:
		return Errorf(CodeBadFrame, "%v frame has flags %#x; %s", h.Op, h.Flags, opShapes[h.Op].describeFlags())
	case !opShapes[h.Op].fits(h):
		return Errorf(CodeBadFrame, "%v frame has sections its op does not use: %s", h.Op, opShapes[h.Op].describe())
	case !opShapes[h.Op].fdPayloadFits(h):
		return Errorf(CodeBadFrame, "%v frame has flag %#x (payload in a descriptor) with %d fds and a payload section of %d bytes; it needs at least 1 fd and exactly %d bytes",
			h.Op, opShapes[h.Op].fdPayload, h.NFDs, h.PayloadLen, PayloadFDLen)
	case h.TopicLen > MaxTopicLen || h.ReplyLen > MaxTopicLen:
		return Errorf(CodeTooLarge, "%v topic or reply of %d/%d bytes; the limit is %d",
			h.Op, h.TopicLen, h.ReplyLen, MaxTopicLen)
	case h.PayloadLen > lim.MaxPayload:
		return Errorf(CodeTooLarge, "%v payload of %d bytes; the limit is %d", h.Op, h.PayloadLen, lim.MaxPayload)
	case h.HdrLen > lim.MaxHeaders:
		return Errorf(CodeTooLarge, "%v headers of %d bytes; the limit is %d", h.Op, h.HdrLen, lim.MaxHeaders)
	case h.NFDs > lim.MaxFDs:
		return Errorf(CodeTooManyFDs, "%v frame carries %d fds; the limit is %d", h.Op, h.NFDs, lim.MaxFDs)
	}
	return nil
}

// shape says which header fields an op uses; the others must be zero, so
// that a later protocol version can give them a meaning.
type shape struct {
	topic, reply, hdrs, payload, fds bool
	id                               int8  // 0: must be 0, 1: must be non-zero, 2: any
	flags                            uint8 // the flag bits the op defines
	// fdPayload is the op's payload-in-a-descriptor flag, 0 for none:
	// with it set the frame carries at least one descriptor (the
	// payload) and a payload section of exactly PayloadFDLen bytes.
	fdPayload uint8
}

var opShapes = [...]shape{
	OpHello:   {payload: true},
	OpInfo:    {payload: true},
	OpPub:     {topic: true, reply: true, hdrs: true, payload: true, fds: true, id: 2, flags: PubRetain | PubPayloadFD, fdPayload: PubPayloadFD},
	OpSub:     {topic: true, reply: true, id: 1, flags: SubDisconnect | SubMonitor | SubRetained},
	OpUnsub:   {id: 1},
	OpMsg:     {topic: true, reply: true, hdrs: true, payload: true, fds: true, id: 1, flags: MsgRetained | MsgPayloadFD, fdPayload: MsgPayloadFD},
	OpPing:    {id: 2},
	OpPong:    {id: 2},
	OpErr:     {payload: true},
	OpReceipt: {payload: true, id: 1},
}

func (s shape) fits(h *Header) bool {
	switch {
	case !s.topic && h.TopicLen != 0, !s.reply && h.ReplyLen != 0, !s.hdrs && h.HdrLen != 0,
		!s.payload && h.PayloadLen != 0, !s.fds && h.NFDs != 0:
		return false
	case s.id == 0 && h.ID != 0, s.id == 1 && h.ID == 0:
		return false
	}
	return true
}

// fdPayloadFits reports whether h keeps the rule of the op's
// payload-in-a-descriptor flag, if it has one and h sets it.
func (s shape) fdPayloadFits(h *Header) bool {
	return h.Flags&s.fdPayload == 0 || h.NFDs != 0 && h.PayloadLen == PayloadFDLen
}

func (s shape) describeFlags() string {
	if s.flags == 0 {
		return "none are defined"
	}
	return fmt.Sprintf("only %#x are defined", s.flags)
}

func (s shape) describe() string {
	used := ""
	for _, f := range []struct {
		on   bool
		name string
	}{{s.topic, "topic"}, {s.reply, "reply"}, {s.hdrs, "headers"}, {s.payload, "payload"}, {s.fds, "fds"}} {
		if f.on {
			used += f.name + ", "
		}
	}
	switch s.id {
	case 1:
		used += "a non-zero id"
	case 2:
		used += "an id"
	default:
		used += "no id"
	}
	return "it takes " + used
}

// headerRule is what check requires of one op's header apart from the
// limits, as masks over the raw bytes, so that a good header passes with a
// few word operations instead of a branch per rule: bytes 0-7 (version,
// op, flags, nfds, topic_len, reply_len) under mask0 must equal want0,
// bytes 8-15 (hdr_len, payload_len) under zero1 must be 0, the id under
// zeroID must be 0, and the id must not be 0 if needID; a header with a
// flag in fdPayload set must have nfds > 0 and payload_len PayloadFDLen
// (not a mask: one test, taken only by the frames that set the flag).
// The words are read little-endian, so byte i of the header is bits 8i to
// 8i+7.
type headerRule struct {
	mask0, want0, zero1 uint64
	zeroID              uint32
	needID              bool
	fdPayload           uint8
}

// headerRules holds a rule per value of the op byte's low 4 bits, made from
// opShapes. Each rule requires the op byte to be its own index, so an op
// that only shares the low bits of a known one (17 and HELLO's 1) fails it,
// and a rule for an unknown op requires an op byte that cannot be there.
var headerRules = func() (t [16]headerRule) {
	const (
		version, op, flags, fds = 0xff, 0xff << 8, 0xff << 16, 0xff << 24
		topic, reply            = 0xffff << 32, 0xffff << 48
		hdrs, payload           = 0xffffffff, 0xffffffff << 32
	)
	for i := range t {
		r := &t[i]
		r.mask0 = version | op | flags
		if !Op(i).Known() {
			r.want0 = Version | uint64(^uint8(i))<<8
			continue
		}
		r.want0 = Version | uint64(i)<<8
		s := opShapes[i]
		r.mask0 &^= uint64(s.flags) << 16 // the op's own flags may be set
		if !s.fds {
			r.mask0 |= fds
		}
		if !s.topic {
			r.mask0 |= topic
		}
		if !s.reply {
			r.mask0 |= reply
		}
		if !s.hdrs {
			r.zero1 |= hdrs
		}
		if !s.payload {
			r.zero1 |= payload
		}
		if s.id == 0 {
			r.zeroID = ^uint32(0)
		}
		r.needID = s.id == 1
		r.fdPayload = s.fdPayload
	}
	return t
}()
