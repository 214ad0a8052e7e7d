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
		o := b[p : p+OriginLen]
		f.Origin = Origin{
			Conn: binary.BigEndian.Uint64(o),
			PID:  binary.BigEndian.Uint32(o[8:]),
			UID:  binary.BigEndian.Uint32(o[12:]),
			GID:  binary.BigEndian.Uint32(o[16:]),
		}
		p += OriginLen
	} else {
		f.Origin = Origin{}
	}
	topicEnd := p + int(f.TopicLen)
	replyEnd := topicEnd + int(f.ReplyLen)
	hdrsEnd := replyEnd + int(f.HdrLen)
	end := hdrsEnd + int(f.PayloadLen)
	f.Topic = b[p:topicEnd:topicEnd]
	f.Reply = b[topicEnd:replyEnd:replyEnd]
	f.Headers = Headers(b[replyEnd:hdrsEnd:hdrsEnd])
	f.Payload = b[hdrsEnd:end:end]
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
	h := Header{
		Op: OpMsg, NFDs: pub.NFDs,
		TopicLen: pub.TopicLen, ReplyLen: pub.ReplyLen,
		HdrLen: pub.HdrLen, PayloadLen: pub.PayloadLen, ID: sid,
	}
	dst = slices.Grow(dst, h.Size())
	dst = AppendFrameHeader(dst, &h)
	dst = binary.BigEndian.AppendUint64(dst, o.Conn)
	dst = binary.BigEndian.AppendUint32(dst, o.PID)
	dst = binary.BigEndian.AppendUint32(dst, o.UID)
	dst = binary.BigEndian.AppendUint32(dst, o.GID)
	dst = append(dst, pub.Topic...)
	dst = append(dst, pub.Reply...)
	dst = append(dst, pub.Headers...)
	return append(dst, pub.Payload...)
}

// SetID sets the id field of an encoded frame, such as a MSG encoded once
// and copied for several subscriptions.
func SetID(frame []byte, id uint32) { binary.BigEndian.PutUint32(frame[16:20], id) }

// AppendSub appends a SUB frame; group is "" for a plain subscription.
func AppendSub(dst []byte, sid uint32, pattern, group string) []byte {
	h := Header{Op: OpSub, TopicLen: uint16(len(pattern)), ReplyLen: uint16(len(group)), ID: sid}
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
