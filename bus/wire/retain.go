package wire

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Retained values and last wills (docs/PROTOCOL.md section 3.5).
const (
	// SysReqWill sets or clears the requesting connection's last will: a
	// WillRequest (set), or an empty payload or a map without a topic
	// (clear), answered with an empty MSG (no Bus-Status) once done.
	SysReqWill = SysReqPrefix + "will"
	// SysReqRetained lists the retained values the asker may receive: a
	// ListRequest (Limit only) answered with a RetainedList.
	SysReqRetained = SysReqPrefix + "retained"
)

// DefaultMaxRetained is the default bound of one retained value or will:
// the bytes of its topic, headers and payload.
const DefaultMaxRetained = 64 << 10

// MaxWillRequest bounds the payload of a SysReqWill request, which is
// read whole: a will is at most the broker's max_retained, and its
// request's frame at most the 64 KiB a frame is read whole in.
const MaxWillRequest = 64 << 10

// WillRequest is the payload of a SysReqWill request that sets a will: the
// msgpack map {"topic": str, "headers": bin, "payload": bin, "retain":
// bool}; all but topic are optional. Headers is an encoded headers
// section (AppendField), as a frame carries it.
type WillRequest struct {
	Topic   string `codec:"topic"`
	Headers []byte `codec:"headers"`
	Payload []byte `codec:"payload"`
	Retain  bool   `codec:"retain"`
}

// DecodeWillRequest decodes a SysReqWill request's payload. An empty
// payload is a WillRequest with no topic: clear the will. The error
// matches ErrBadRequest and says what is wrong.
func DecodeWillRequest(b []byte) (WillRequest, error) {
	var w WillRequest
	switch {
	case len(b) == 0:
		return w, nil
	case len(b) > MaxWillRequest:
		return w, fmt.Errorf("%w: the payload is %d bytes; a will request is at most %d", ErrBadRequest, len(b), MaxWillRequest)
	case !isMsgpackMap(b[0]):
		return w, fmt.Errorf("%w: the payload is not a msgpack map (first byte 0x%02x)", ErrBadRequest, b[0])
	}
	dec := codec.NewDecoderBytes(b, handle)
	if err := dec.Decode(&w); err != nil {
		return WillRequest{}, fmt.Errorf("%w: %v", ErrBadRequest, shorten(err.Error()))
	}
	if n := dec.NumBytesRead(); n != len(b) {
		return WillRequest{}, fmt.Errorf("%w: %d bytes follow the map", ErrBadRequest, len(b)-n)
	}
	return w, nil
}

// RetainedValue is one entry of a RetainedList: a retained topic, the
// size of its value (headers and payload), and who published it.
type RetainedValue struct {
	Topic  string `codec:"topic"`
	Size   uint64 `codec:"size"`
	ConnID uint64 `codec:"conn_id"` // the publisher's connection, as in its MSGs' origin
	PID    uint32 `codec:"pid"`
	UID    uint32 `codec:"uid"`
	GID    uint32 `codec:"gid"`
	Since  uint64 `codec:"since"` // when it was retained, in nanoseconds since the Unix epoch
}

// RetainedList is the payload of the answer to a SysReqRetained request:
// the retained values the asker may receive, sorted by topic; Total
// counts them all, and Truncated says the list stops before them all.
type RetainedList struct {
	Retained  []RetainedValue `codec:"retained"`
	Total     uint64          `codec:"total"`
	Truncated bool            `codec:"truncated"`
}
