package wire

import "strconv"

// Version is the protocol version this package speaks, carried in every
// frame's first byte.
const Version = 1

// Op identifies what a frame is.
type Op uint8

// Frame operations. C→B is client to broker, B→C broker to client.
const (
	OpHello Op = 1 // C→B, first frame: protocol version and client name (msgpack payload)
	OpInfo  Op = 2 // B→C, answer to HELLO: connection id and the broker's limits (msgpack payload)
	OpPub   Op = 3 // C→B: publish to topic, with optional reply topic, headers, payload, fds
	OpSub   Op = 4 // C→B: subscribe id to the pattern in topic, queue group in the reply section
	OpUnsub Op = 5 // C→B: drop subscription id
	OpMsg   Op = 6 // B→C: a message for subscription id, with the publisher's origin
	OpPing  Op = 7 // either way: asks for a PONG with the same id
	OpPong  Op = 8 // either way: answers a PING
	OpErr   Op = 9 // B→C: an error about a frame the client sent (msgpack payload)
	// OpReceipt (B→C) answers a PUB that carried an id: how many
	// subscriptions got it (see Receipt).
	OpReceipt Op = 10
)

// Flags of SUB.
const (
	// SubDisconnect makes the subscription's slow-consumer policy
	// "disconnect": a message it has no room for closes the connection
	// (after an ERR) instead of being dropped and reported as a gap.
	SubDisconnect uint8 = 1 << 0
	// SubMonitor makes the subscription a monitor: a passive watcher that
	// gets a copy of what its pattern matches, without counting as a
	// receiver (no-responders, queue groups, stream dials), without the
	// messages' descriptors (FDsHeader says how many there were), and
	// never waited for: it always drops what it has no room for.
	SubMonitor uint8 = 1 << 1
	// SubRetained asks for the retained values of the topics the pattern
	// matches before any live message (MsgRetained marks them).
	SubRetained uint8 = 1 << 2
)

// Flags of PUB.
const (
	// PubRetain asks the broker to keep the message as its topic's
	// retained value (an empty payload clears it), and to deliver it live
	// as usual.
	PubRetain uint8 = 1 << 0
	// PubPayloadFD says the payload is in a descriptor, not inline: the
	// frame's first descriptor is a sealed memfd holding it, and the
	// payload section is exactly PayloadFDLen bytes, the memfd's size
	// (docs/PROTOCOL.md section 6.1).
	PubPayloadFD uint8 = 1 << 1
)

// Flags of MSG.
const (
	// MsgRetained marks a MSG that delivers a retained value from the
	// broker's store to a SubRetained subscription, not a live publish.
	MsgRetained uint8 = 1 << 0
	// MsgPayloadFD is PubPayloadFD on delivery: the MSG's first
	// descriptor is the sealed memfd holding its payload, and its payload
	// section is the memfd's size.
	MsgPayloadFD uint8 = 1 << 1
)

// PayloadFDLen is the length of the payload section of a PUB or MSG with
// the payload-in-a-descriptor flag: the memfd's size, a big-endian uint64.
const PayloadFDLen = 8

var opNames = [...]string{
	OpHello: "HELLO", OpInfo: "INFO", OpPub: "PUB", OpSub: "SUB", OpUnsub: "UNSUB",
	OpMsg: "MSG", OpPing: "PING", OpPong: "PONG", OpErr: "ERR", OpReceipt: "RECEIPT",
}

// String returns the op's protocol name, such as "PUB".
func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return "OP(" + strconv.Itoa(int(o)) + ")"
}

// Known reports whether o is an op of this protocol version.
func (o Op) Known() bool { return o >= OpHello && o <= OpReceipt }
