package wire

import (
	"encoding/binary"
	"iter"
)

// Headers is an encoded headers section: zero or more fields, each
//
//	offset size field
//	0      2    key_len   1..255
//	2      k    key       visible ASCII (0x21-0x7e)
//	2+k    2    val_len
//	4+k    v    value     any bytes
//
// with big-endian lengths. Keys may repeat; order is kept.
type Headers []byte

// MaxKeyLen is the longest header key.
const MaxKeyLen = 255

// Headers the bus itself sets. Keys starting with ReservedPrefix belong to
// the bus.
const (
	ReservedPrefix = "Bus-"
	// StatusHeader is set on messages the broker sends about a request;
	// StatusNoResponders is its value when a request (a PUB with a reply
	// topic) matched no subscription: the empty MSG to the reply topic that
	// tells the requester at once instead of letting it wait.
	StatusHeader       = "Bus-Status"
	StatusNoResponders = "503"
	// StatusDropped is the status when a request matched subscriptions but
	// every one of them was too far behind to take it: the requester
	// learns at once that nobody will answer, and that trying again later
	// may work.
	StatusDropped = "429"
	// DroppedHeader marks a gap notice: an empty MSG from the broker to a
	// subscription that lost messages because its connection fell behind,
	// with the number lost since the last notice in decimal.
	DroppedHeader = "Bus-Dropped"
	// ReasonHeader says, on a gap notice, which limit the lost messages
	// did not fit in, for people to read.
	ReasonHeader = "Bus-Reason"
	// FDsHeader is added, by the broker, to the copy of a message with
	// descriptors that a monitor subscription (SubMonitor) gets: that copy
	// carries none, and the header says, in decimal, how many the message
	// had.
	FDsHeader = "Bus-FDs"
)

// GroupOnlyPrefix starts the topics whose messages the broker gives only
// to queue groups, and within them only to members subscribed to exactly
// the topic, without wildcards: the topics of stream requests, each
// carrying one end of a socket meant for exactly one listener. A
// subscriber to ">", plain or in a group, gets no duplicate of any
// stream's socket, and a request no listener takes gets its no-responders
// answer.
const GroupOnlyPrefix = "_STREAM."

// StreamGroup is the queue group of a stream's listeners: a SUB to a
// GroupOnlyPrefix topic must be in it, so that a stream name's listeners
// are one group and a dial reaches exactly one of them.
const StreamGroup = "listeners"

// InboxPrefix starts the private inboxes of connections: the broker gives
// each connection one, "_INBOX.<conn id>", announced in INFO. What is
// published under a connection's inbox reaches only that connection (and
// subscriptions a policy lets monitor), and only the connection or one
// answering a request it made may publish there.
const InboxPrefix = "_INBOX."

// AppendField appends one key/value field to h. The key must satisfy Check's
// rules; the value must be shorter than 64 KiB.
func AppendField(h Headers, key, value string) Headers {
	h = binary.BigEndian.AppendUint16(h, uint16(len(key)))
	h = append(h, key...)
	h = binary.BigEndian.AppendUint16(h, uint16(len(value)))
	return append(h, value...)
}

// Check reports whether h is well formed, as an *Error with CodeBadHeaders.
func (h Headers) Check() error {
	for i := 1; len(h) > 0; i++ {
		k, rest, ok := field(h)
		if !ok {
			return Errorf(CodeBadHeaders, "field %d overruns the headers section", i)
		}
		if len(k) == 0 || len(k) > MaxKeyLen {
			return Errorf(CodeBadHeaders, "field %d has a key of %d bytes; keys are 1 to %d", i, len(k), MaxKeyLen)
		}
		if !ValidKey(k) {
			return Errorf(CodeBadHeaders, "field %d key %q has a byte outside visible ASCII", i, k)
		}
		h = rest
	}
	return nil
}

// ValidKey reports whether key may be a header key: 1 to MaxKeyLen bytes,
// each visible ASCII. It takes a string too, so that a client can check a
// key before encoding it, without copying it.
func ValidKey[K string | []byte](key K) bool {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return false
	}
	for i := range len(key) {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// All yields every field in order; the slices are views into h. It stops at
// the first malformed field, which Check would report.
func (h Headers) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for len(h) > 0 {
			k, rest, ok := field(h)
			if !ok {
				return
			}
			v := h[4+len(k) : len(h)-len(rest)]
			if !yield(k, v) {
				return
			}
			h = rest
		}
	}
}

// Get returns the value of the first field named key.
func (h Headers) Get(key string) (string, bool) {
	for k, v := range h.All() {
		if string(k) == key {
			return string(v), true
		}
	}
	return "", false
}

// field splits off h's first field, returning its key and what follows it.
func field(h Headers) (key []byte, rest Headers, ok bool) {
	if len(h) < 2 {
		return nil, nil, false
	}
	kl := int(binary.BigEndian.Uint16(h))
	if len(h) < 2+kl+2 {
		return nil, nil, false
	}
	vl := int(binary.BigEndian.Uint16(h[2+kl:]))
	end := 4 + kl + vl
	if len(h) < end {
		return nil, nil, false
	}
	return h[2 : 2+kl], h[end:], true
}
