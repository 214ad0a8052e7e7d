package wire

import (
	"encoding/binary"
	"slices"
)

// Origin says who published a message. The broker fills it from the
// publisher's socket credentials (SO_PEERCRED), so a client cannot forge it.
//
//	offset size field
//	0      8    conn   the publisher's connection id
//	8      4    pid
//	12     4    uid
//	16     4    gid
type Origin struct {
	Conn uint64
	PID  uint32
	UID  uint32
	GID  uint32
}

// Frame is a decoded frame. Its byte slices are views into the buffer it was
// decoded from and are valid only as long as that buffer is.
type Frame struct {
	Header
	Origin  Origin // MSG only
	Topic   []byte // PUB, MSG: the topic; SUB: the pattern
	Reply   []byte // PUB, MSG: the reply topic, if any; SUB: the queue group, if any
	Headers Headers
	Payload []byte
	// Body is set instead of Payload on a large frame read by a Reader
	// with SetLargeFrames: everything after the header (the origin, if
	// any, then every section) in the pieces it was read into. Topic,
	// Reply and Headers still point into it; the payload is the rest.
	Body [][]byte
}

// DecodeFrame splits a whole frame, whose header h was decoded from b's
// start, into its sections. b must hold h.Size() bytes.
func DecodeFrame(b []byte, h Header) (Frame, error) {
	var f Frame
	err := decodeFrameInto(&f, b, &h)
	return f, err
}

// decodeFrameInto is DecodeFrame into f, which it overwrites whole.
func decodeFrameInto(f *Frame, b []byte, h *Header) error {
	if len(b) < h.Size() {
		*f = Frame{}
		return ErrShortFrame
	}
	f.Header = *h
	f.setSections(b)
	return nil
}

// setSections sets f's origin and sections from b, a whole frame whose
// header f.Header already holds (the Reader decodes it there, so that no
// copy of it is made on the way).
func (f *Frame) setSections(b []byte) {
	p := HeaderLen
	if f.Op == OpMsg {
		f.Origin = decodeOrigin(b[p:])
		p += OriginLen
	} else {
		f.Origin = Origin{}
	}
	var h []byte
	f.Topic, p = section(b, p, int(f.TopicLen))
	f.Reply, p = section(b, p, int(f.ReplyLen))
	h, p = section(b, p, int(f.HdrLen))
	f.Headers = Headers(h)
	f.Payload, _ = section(b, p, int(f.PayloadLen))
	f.Body = nil
}

func decodeOrigin(o []byte) Origin {
	return Origin{
		Conn: binary.BigEndian.Uint64(o),
		PID:  binary.BigEndian.Uint32(o[8:]),
		UID:  binary.BigEndian.Uint32(o[12:]),
		GID:  binary.BigEndian.Uint32(o[16:]),
	}
}

// setBody sets f's sections from the pieces of a large frame's body
// (everything after its header, which f.Header holds); the first piece
// holds everything before the payload.
func (f *Frame) setBody(pieces [][]byte) {
	b := pieces[0]
	p := 0
	f.Origin = Origin{}
	if f.Op == OpMsg {
		f.Origin = decodeOrigin(b)
		p = OriginLen
	}
	f.Topic, p = section(b, p, int(f.TopicLen))
	f.Reply, p = section(b, p, int(f.ReplyLen))
	var h []byte
	h, _ = section(b, p, int(f.HdrLen))
	f.Headers = Headers(h)
	f.Payload = nil
	f.Body = pieces
}

// section returns the n bytes of b from p, capped, and where they end.
func section(b []byte, p, n int) ([]byte, int) { return b[p : p+n : p+n], p + n }

// prefixLen returns the bytes of the frame before its payload: header,
// origin, topic, reply and headers.
func (h *Header) prefixLen() int {
	return h.Size() - int(h.PayloadLen)
}

// AppendPub appends a PUB frame to dst. hdrs is an encoded headers section
// (see AppendField), or nil.
func AppendPub(dst []byte, topic, reply string, hdrs Headers, payload []byte, nfds int) []byte {
	h := Header{
		Op: OpPub, NFDs: uint8(nfds),
		TopicLen: uint16(len(topic)), ReplyLen: uint16(len(reply)),
		HdrLen: uint32(len(hdrs)), PayloadLen: uint32(len(payload)),
	}
	dst = slices.Grow(dst, h.Size())
	dst = AppendFrameHeader(dst, &h)
	dst = append(dst, topic...)
	dst = append(dst, reply...)
	dst = append(dst, hdrs...)
	return append(dst, payload...)
}

// AppendMsg appends the MSG frame that delivers pub to subscription sid.
func AppendMsg(dst []byte, sid uint32, o *Origin, pub *Frame) []byte {
	dst = slices.Grow(dst, MsgHeadLen+pub.Size()-HeaderLen)
	dst = AppendMsgHead(dst, sid, o, &pub.Header)
	dst = append(dst, pub.Topic...)
	dst = append(dst, pub.Reply...)
	dst = append(dst, pub.Headers...)
	return append(dst, pub.Payload...)
}

// AppendMsgHead appends the header and origin of the MSG that delivers pub
// to subscription sid: the MSG's first MsgHeadLen bytes. The MSG's flags
// are pub's MsgRetained bit (a frame the broker made for a retained value
// sets it; a PUB's retain flag is cleared before it is routed) and its
// payload-in-a-descriptor bit (PubPayloadFD is MsgPayloadFD: the MSG's
// first descriptor is the payload, as the PUB's was). pub's bytes after
// its own header follow them unchanged, so a large PUB can be delivered by
// reference to its body (see Outbox.AppendRef).
func AppendMsgHead(dst []byte, sid uint32, o *Origin, pub *Header) []byte {
	h := Header{
		Op: OpMsg, Flags: pub.Flags & (MsgRetained | MsgPayloadFD), NFDs: pub.NFDs,
		TopicLen: pub.TopicLen, ReplyLen: pub.ReplyLen,
		HdrLen: pub.HdrLen, PayloadLen: pub.PayloadLen, ID: sid,
	}
	dst = AppendFrameHeader(dst, &h)
	dst = binary.BigEndian.AppendUint64(dst, o.Conn)
	dst = binary.BigEndian.AppendUint32(dst, o.PID)
	dst = binary.BigEndian.AppendUint32(dst, o.UID)
	return binary.BigEndian.AppendUint32(dst, o.GID)
}

// MsgHeadLen is what AppendMsgHead appends.
const MsgHeadLen = HeaderLen + OriginLen

// SetID sets the id field of an encoded frame, such as a MSG encoded once
// and copied for several subscriptions.
func SetID(frame []byte, id uint32) { binary.BigEndian.PutUint32(frame[16:20], id) }

// AppendSub appends a SUB frame; group is "" for a plain subscription,
// flags are SubFlags (0 for the defaults).
func AppendSub(dst []byte, sid uint32, pattern, group string, flags uint8) []byte {
	h := Header{Op: OpSub, Flags: flags, TopicLen: uint16(len(pattern)), ReplyLen: uint16(len(group)), ID: sid}
	dst = AppendFrameHeader(dst, &h)
	dst = append(dst, pattern...)
	return append(dst, group...)
}

// AppendControl appends a frame of op with only an id and a payload: UNSUB,
// PING and PONG (no payload), and HELLO, INFO and ERR (msgpack payload).
func AppendControl(dst []byte, op Op, id uint32, payload []byte) []byte {
	h := Header{Op: op, ID: id, PayloadLen: uint32(len(payload))}
	dst = AppendFrameHeader(dst, &h)
	return append(dst, payload...)
}
