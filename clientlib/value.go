package clientlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Typed payloads are msgpack (https://msgpack.org). A message with a typed
// payload carries the header ContentTypeHeader: ContentTypeMsgpack, so tools
// such as `bus sub -json` know how to show it; EncodeValue says how Go
// values map to msgpack.
const (
	// ContentTypeHeader names the header saying how a payload is encoded.
	// It is an ordinary header: any client may set it to any media type.
	ContentTypeHeader = "Content-Type"
	// ContentTypeMsgpack is its value on typed (msgpack) payloads.
	ContentTypeMsgpack = "application/msgpack"
)

// ErrDecode is returned, wrapped with the reason, when a payload cannot be
// decoded into the value asked for; ErrEncode when a value cannot be
// encoded (a complex number, say).
var (
	ErrDecode = errors.New("bus: cannot decode payload")
	ErrEncode = errors.New("bus: cannot encode value")
)

// valueHandle is the one msgpack configuration of typed payloads, set up
// here and only read after (the codec package allows that from many
// goroutines). WriteExt selects the current msgpack spec: str8, bin and
// timestamps. Decoded maps get string keys; a map with other keys fails to
// decode into any rather than producing something JSON cannot show.
var valueHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.MapType = reflect.TypeOf(map[string]any(nil))
	h.MaxInitLen = 1 << 16 // a hostile length prefix must not size an allocation
	return h
}()

// valueEncoder is an encoder with its buffer, reused: a fresh
// codec.Encoder costs several allocations and about three times the time of
// a reset one (measured: 7 allocations and 1.4 µs against 3 and 0.5 µs).
type valueEncoder struct {
	enc *codec.Encoder
	buf []byte
}

var encoders = sync.Pool{New: func() any {
	e := &valueEncoder{buf: make([]byte, 0, 256)}
	e.enc = codec.NewEncoderBytes(&e.buf, valueHandle)
	return e
}}

// encode encodes v into the encoder's buffer, valid until the encoder goes
// back to the pool.
func (e *valueEncoder) encode(v any) ([]byte, error) {
	e.buf = e.buf[:0]
	e.enc.ResetBytes(&e.buf) // also clears an earlier error, which would stick
	if err := e.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: %T as msgpack: %w", ErrEncode, v, err)
	}
	return e.buf, nil
}

func (e *valueEncoder) release() {
	if cap(e.buf) > 64<<10 {
		return // one huge value must not pin its buffer in the pool
	}
	encoders.Put(e)
}

// EncodeValue returns v encoded as msgpack, the encoding of PublishValue,
// RequestValue and RespondValue. Go values map to msgpack, and decode back
// into an any, like this:
//
//	Go                                msgpack          decoded into any
//	nil, nil pointer/slice/map        nil              nil
//	bool                              bool             bool
//	int, int8 … int64                 int              int64
//	uint, uint8 … uint64              int              uint64 above MaxInt64, else int64
//	float32, float64                  float32/float64  float64
//	string                            str              string
//	[]byte                            bin              []byte
//	slice or array (not of bytes)     array            []any
//	map                               map              map[string]any
//	struct                            map of fields    map[string]any
//	time.Time                         timestamp (-1)   time.Time, in UTC
//
// Struct fields are keyed by name, or by a `codec:"name"` tag (a `json`
// tag is used when there is no codec tag); `codec:"-"` leaves a field out,
// `codec:",omitempty"` skips zero values. Unexported fields, funcs and
// func-typed struct fields are left out. Decoding into a struct ignores keys it has no
// field for, so a sender may add fields without breaking older receivers.
// Decoding into any gives the types in the right-hand column; decode into a
// typed destination to get anything else back.
func EncodeValue(v any) ([]byte, error) {
	e := encoders.Get().(*valueEncoder)
	defer e.release()
	b, err := e.encode(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// DecodeValue decodes msgpack b into v, which must be a non-nil pointer.
func DecodeValue(b []byte, v any) error {
	if err := codec.NewDecoderBytes(b, valueHandle).Decode(v); err != nil {
		return fmt.Errorf("%w: msgpack into %T: %w", ErrDecode, v, err)
	}
	return nil
}

// valueHeader is shared by every typed message sent: publishMsg only reads
// a message's header.
var valueHeader = HeaderOf(ContentTypeHeader, ContentTypeMsgpack)

// publishValue sends v as a typed payload. The encoded bytes are copied into
// the connection's output before publishMsg returns, so the encoder's buffer
// is reused at once.
func (c *Conn) publishValue(ctx context.Context, topic, reply string, v any, files []*os.File, now bool, pin *session) error {
	e := encoders.Get().(*valueEncoder)
	defer e.release()
	data, err := e.encode(v)
	if err != nil {
		return err
	}
	return c.publishMsg(ctx, &Msg{Topic: topic, Reply: reply, Header: valueHeader, Data: data, Files: files}, now, pin)
}

// PublishValue publishes v, encoded as msgpack, to topic. Files travel as
// with Publish.
func (c *Conn) PublishValue(topic string, v any, files ...*os.File) error {
	return c.publishValue(context.Background(), topic, "", v, files, false, nil)
}

// RequestValue sends v, encoded as msgpack, as a request to topic and
// decodes the reply's payload into reply (a pointer), unless reply is nil.
// It returns the reply message too, for its header and files; its files are
// the caller's to close even when decoding fails.
func (c *Conn) RequestValue(ctx context.Context, topic string, v, reply any, files ...*os.File) (*Msg, error) {
	r, err := c.request(ctx, topic, func(replyTo string, pin *session) error {
		return c.publishValue(ctx, topic, replyTo, v, files, true, pin)
	})
	if err != nil {
		return nil, err
	}
	if reply != nil {
		if err := r.Decode(reply); err != nil {
			return r, err
		}
	}
	return r, nil
}

// RespondValue answers the message with v encoded as msgpack, like Respond.
func (m *Msg) RespondValue(v any, files ...*os.File) error {
	if err := m.canRespond(); err != nil {
		return err
	}
	return m.sub.conn.publishValue(context.Background(), m.Reply, "", v, files, true, m.sess)
}

// SetValue makes v, encoded as msgpack, the message's payload, and sets its
// Content-Type header, keeping any other headers: for a typed message with
// headers of its own, sent with PublishMsg, RequestMsg or RespondMsg.
func (m *Msg) SetValue(v any) error {
	data, err := EncodeValue(v)
	if err != nil {
		return err
	}
	m.Header.Set(ContentTypeHeader, ContentTypeMsgpack)
	m.Data = data
	return nil
}

// Decode decodes the message's msgpack payload into v, a pointer. A
// message whose Content-Type header names another encoding is refused with
// ErrDecode naming it; one without the header is tried as msgpack.
func (m *Msg) Decode(v any) error {
	if ct, ok := m.Header.Lookup(ContentTypeHeader); ok && !isMsgpack(ct) {
		return fmt.Errorf("%w: content type is %q, not %q", ErrDecode, ct, ContentTypeMsgpack)
	}
	return DecodeValue(m.Data, v)
}

// IsValue reports whether the message says its payload is msgpack.
func (m *Msg) IsValue() bool { return isMsgpack(m.Header.Get(ContentTypeHeader)) }

// isMsgpack reports whether a Content-Type value names msgpack. Media
// types are case-insensitive and may carry parameters.
func isMsgpack(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), ContentTypeMsgpack)
}
