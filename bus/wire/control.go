package wire

import (
	"fmt"
	"reflect"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// handle is the one msgpack configuration of the protocol, set up once and
// only read after (which the codec package allows from many goroutines).
// WriteExt selects the current msgpack spec (str8, bin, timestamps); maps
// decoded into interface values get string keys.
var handle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.MapType = reflect.TypeOf(map[string]any(nil))
	return h
}()

// Hello is the payload of HELLO, the client's first frame. A broker
// decodes it with DecodeHello, which holds it to the protocol's rules.
type Hello struct {
	Version uint64 `codec:"version"` // the protocol version the client speaks
	Name    string `codec:"name"`    // a name for logs and monitoring, may be empty
	// FDPayloads says the client takes MSGs whose payload is in a memfd
	// (MsgPayloadFD, docs/PROTOCOL.md section 6.1). Without it the broker
	// sends it none: such a message is lost to its subscriptions, each
	// told by a gap notice.
	FDPayloads bool `codec:"fd_payloads,omitempty"`
}

// Info is the payload of INFO, the broker's answer to HELLO.
type Info struct {
	Version    int    `codec:"version"`     // the protocol version of this connection
	Server     string `codec:"server"`      // the broker's software and version
	ConnID     uint64 `codec:"conn_id"`     // this connection's id, as it appears in origins
	MaxPayload uint32 `codec:"max_payload"` // Limits.MaxPayload
	MaxHeaders uint32 `codec:"max_headers"` // Limits.MaxHeaders
	MaxFDs     uint8  `codec:"max_fds"`     // Limits.MaxFDs
	MaxSubs    uint32 `codec:"max_subs"`    // subscriptions allowed on this connection
	// MaxPending and MaxPendingFDs bound the bytes and descriptors the
	// broker queues for this connection; past them its subscriptions lose
	// messages (or, with SubDisconnect, the connection is closed).
	MaxPending    uint64 `codec:"max_pending,omitempty"`
	MaxPendingFDs uint32 `codec:"max_pending_fds,omitempty"`

	// The bounds of the slow-consumer policy (PROTOCOL.md section 8),
	// announced so that a client need not learn them from an ERR's text;
	// each key names its unit. Those that may be 0 are sent even then.

	// WriteTimeoutMS: a connection that accepts no byte for this long
	// while output waits is closed (slow consumer).
	WriteTimeoutMS uint64 `codec:"write_timeout_ms,omitempty"`
	// FrameTimeoutMS: how long a frame may take to arrive whole once its
	// first byte has, and descriptors may wait for their frame.
	FrameTimeoutMS uint64 `codec:"frame_timeout_ms,omitempty"`
	// StallBudgetUS: the longest a publisher waits, per read batch, for
	// receivers that fell behind; 0: it never waits.
	StallBudgetUS uint64 `codec:"stall_budget_us"`
	// LagBytes and LagFDs: a connection with more than these queued makes
	// its publishers wait (within the stall budget).
	LagBytes uint64 `codec:"lag_bytes,omitempty"`
	LagFDs   uint32 `codec:"lag_fds"`
	// LaggingMaxBytes and LaggingMaxFDs: a lagging connection takes no
	// message while it holds more than LaggingMaxBytes, and none with
	// descriptors while it holds more than LaggingMaxFDs.
	LaggingMaxBytes uint64 `codec:"lagging_max_bytes,omitempty"`
	LaggingMaxFDs   uint32 `codec:"lagging_max_fds"`

	// Inbox is the connection's private inbox, "_INBOX.<conn id>": reply
	// topics of its requests must be under it (InboxPrefix).
	Inbox string `codec:"inbox,omitempty"`
	// Receipts says the broker answers a PUB that carries an id with a
	// RECEIPT (OpReceipt); a broker without it refuses such a PUB.
	Receipts bool `codec:"receipts,omitempty"`
	// Retain says the broker keeps retained values (PubRetain,
	// SubRetained) and serves last wills ($SYS.req.will); MaxRetained
	// bounds one retained value or will: its topic, headers and payload.
	Retain      bool   `codec:"retain,omitempty"`
	MaxRetained uint32 `codec:"max_retained,omitempty"`
	// Names says the broker serves well-known names (NamePrefix,
	// SysReqNameRequest: docs/PROTOCOL.md section 3.4).
	Names bool `codec:"names,omitempty"`
	// MaxFDPayload is the largest payload the broker takes in a memfd
	// (PubPayloadFD), in bytes; 0: it takes none (docs/PROTOCOL.md
	// section 6.1).
	MaxFDPayload uint64 `codec:"max_fd_payload,omitempty"`
}

// Limits returns the limits the Info announces.
func (i *Info) Limits() Limits {
	return Limits{MaxPayload: i.MaxPayload, MaxHeaders: i.MaxHeaders, MaxFDs: i.MaxFDs}
}

// AppendBody appends v encoded as msgpack to dst.
func AppendBody(dst []byte, v any) ([]byte, error) {
	enc := codec.NewEncoderBytes(&dst, handle)
	if err := enc.Encode(v); err != nil {
		return dst, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	return dst, nil
}

// DecodeBody decodes msgpack b into v, which must point to a zeroed value.
// A malformed body is an *Error with CodeBadFrame.
func DecodeBody(b []byte, v any) error {
	dec := codec.NewDecoderBytes(b, handle)
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadFrame, "%s payload is not the msgpack map it should be: %v", bodyName(v), err)
	}
	return nil
}

func bodyName(v any) string {
	switch v.(type) {
	case *Hello:
		return "HELLO"
	case *Info:
		return "INFO"
	case *Error:
		return "ERR"
	}
	return "frame"
}
