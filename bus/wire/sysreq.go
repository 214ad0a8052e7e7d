package wire

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Broker requests. A PUB to a topic SysReqPrefix+NAME that has a reply
// topic (and carries no descriptors) is a request the broker answers
// itself: its answer goes, as a MSG from connection 0, to the requester's
// own subscriptions that match the reply topic. An answer's Bus-Status
// header says what went wrong, if anything: StatusBadRequest,
// StatusNotFound, StatusNoRoom, or StatusNoResponders for a NAME the broker
// does not serve.
const (
	SysReqPrefix = "$SYS.req."
	// SysReqConn asks who holds a connection: a ConnRequest answered
	// with a ConnInfo and, when the broker has one, a pidfd of the
	// connection's process as the answer's one descriptor.
	SysReqConn = SysReqPrefix + "conn"
	// SysReqInfo asks about the broker itself: a request with an empty
	// payload (or any map, whose keys are ignored), answered with a
	// BrokerInfo.
	SysReqInfo = SysReqPrefix + "info"
)

// Statuses of broker requests' answers (StatusHeader), beside
// StatusNoResponders.
const (
	// StatusBadRequest says the request's payload was malformed;
	// ReasonHeader says how.
	StatusBadRequest = "400"
	// StatusForbidden says the policy does not let the requester do what
	// the request asks: for SysReqWill, publish to the will's topic; for
	// a name request, own the name. ReasonHeader names the rule.
	StatusForbidden = "403"
	// StatusNotFound says what the request names does not exist: for
	// SysReqConn, no live connection has the id.
	StatusNotFound = "404"
	// StatusNoRoom says the requester's user has no room in its budget for
	// what the answer needs (the descriptor of a SysReqConn answer);
	// ReasonHeader names the budget. Like StatusDropped, which has the
	// same value, it means trying again later may work.
	StatusNoRoom = "429"
)

// MaxSysReqPayload bounds the payload of a broker request: requests are
// small maps, and the broker decodes nothing larger.
const MaxSysReqPayload = 1024

// ConnRequest is the payload of a SysReqConn request: the msgpack map
// {"conn_id": uint}.
type ConnRequest struct {
	ConnID uint64 `codec:"conn_id"`
}

// ConnInfo is the payload of the answer to a SysReqConn request: what the
// broker knows of the connection, all of it taken by the broker itself.
type ConnInfo struct {
	ConnID uint64 `codec:"conn_id"` // the connection's id, as in origins
	PID    uint32 `codec:"pid"`     // from SO_PEERCRED at accept; 0 if in another pid namespace than the broker's
	UID    uint32 `codec:"uid"`     // likewise
	GID    uint32 `codec:"gid"`     // likewise
	Name   string `codec:"name"`    // HELLO's name; "" before HELLO, or if it gave none
	Since  uint64 `codec:"since"`   // when the broker accepted it, in Unix nanoseconds
}

// BrokerInfo is the payload of the answer to a SysReqInfo request: what
// the broker says of itself.
type BrokerInfo struct {
	Server   string   `codec:"server"`   // the broker's software, as INFO's "server"
	Build    string   `codec:"build"`    // its build's module version; "" if unknown
	Protocol int      `codec:"protocol"` // the protocol version it speaks
	PID      uint32   `codec:"pid"`      // its process id, in its own pid namespace
	UID      uint32   `codec:"uid"`      // the uid it runs as
	Started  uint64   `codec:"started"`  // when it started, in Unix nanoseconds
	Conns    uint64   `codec:"conns"`    // connections it holds, handshaking ones included
	Sockets  []string `codec:"sockets"`  // the paths it listens on, sorted
}

// ErrBadRequest matches the errors DecodeConnRequest returns.
var ErrBadRequest = errors.New("wire: malformed broker request")

// DecodeConnRequest decodes a SysReqConn request's payload: one msgpack
// map, nothing after it, whose "conn_id" is an unsigned integer (in any
// msgpack integer encoding). Other keys are ignored. The error, matching
// ErrBadRequest, says what is wrong in words fit for a Bus-Reason header.
func DecodeConnRequest(b []byte) (ConnRequest, error) {
	var req struct {
		ConnID *uint64 `codec:"conn_id"`
	}
	if err := decodeRequestMap(b, &req); err != nil {
		return ConnRequest{}, err
	}
	if req.ConnID == nil {
		return ConnRequest{}, fmt.Errorf("%w: the map has no \"conn_id\"", ErrBadRequest)
	}
	return ConnRequest{ConnID: *req.ConnID}, nil
}

// DecodeInfoRequest checks a SysReqInfo request's payload: empty, or one
// msgpack map whose keys it ignores. The error, matching ErrBadRequest,
// says what is wrong.
func DecodeInfoRequest(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	return decodeRequestMap(b, &m)
}

// decodeRequestMap decodes b, which must be exactly one msgpack map, into
// the struct v points to.
func decodeRequestMap(b []byte, v any) error {
	switch {
	case len(b) == 0:
		return fmt.Errorf("%w: the payload is empty; it must be a msgpack map", ErrBadRequest)
	case len(b) > MaxSysReqPayload:
		return fmt.Errorf("%w: the payload is %d bytes; a request is at most %d", ErrBadRequest, len(b), MaxSysReqPayload)
	case !isMsgpackMap(b[0]):
		// The codec would also fill a struct from an array, by position.
		return fmt.Errorf("%w: the payload is not a msgpack map (first byte 0x%02x)", ErrBadRequest, b[0])
	}
	dec := codec.NewDecoderBytes(b, handle)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, shorten(err.Error()))
	}
	if n := dec.NumBytesRead(); n != len(b) {
		return fmt.Errorf("%w: %d bytes follow the map", ErrBadRequest, len(b)-n)
	}
	return nil
}

// isMsgpackMap reports whether b starts a msgpack map: fixmap, map16 or
// map32.
func isMsgpackMap(b byte) bool { return b&0xf0 == 0x80 || b == 0xde || b == 0xdf }

// shorten bounds a decoder's message, which may quote the input, to what
// a header value should carry.
func shorten(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
