package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Code is an error code carried in ERR frames. A Code is itself an error, so
// that users can test a broker's answer with errors.Is(err, wire.CodeX).
type Code uint16

// Error codes. Fatal ones end the connection after the ERR frame is sent;
// the others refuse one frame and the connection carries on.
const (
	CodeBadFrame         Code = 1  // fatal: a header or section is malformed
	CodeBadVersion       Code = 2  // fatal: unsupported protocol version
	CodeUnknownOp        Code = 3  // fatal: op not known, or not allowed in this direction
	CodeTooLarge         Code = 4  // fatal: a section exceeds the announced limit
	CodeTooManyFDs       Code = 5  // fatal: more fds than MaxFDs, or fds queued that no frame claims
	CodeMissingFDs       Code = 6  // fatal: the frame claims fds that did not arrive with it
	CodeHandshake        Code = 7  // fatal: no HELLO first, or none before the handshake timeout
	CodeInvalidTopic     Code = 8  // a PUB topic or reply topic breaks the topic grammar
	CodeInvalidPattern   Code = 9  // a SUB pattern breaks the pattern grammar
	CodeInvalidGroup     Code = 10 // a SUB queue group name is not valid
	CodeBadHeaders       Code = 11 // the headers section is malformed
	CodeDuplicateSub     Code = 12 // SUB with an id already in use on this connection
	CodeUnknownSub       Code = 13 // UNSUB of an id not in use
	CodeTooManySubs      Code = 14 // the connection's subscription limit is reached
	CodePermissionDenied Code = 15 // policy forbids this publish or subscribe, or (fatal, in place of INFO) the connection
	CodeReservedTopic    Code = 16 // publishing to a topic the broker owns ($SYS.)
	CodeSlowConsumer     Code = 17 // fatal: the connection fell too far behind
	CodeShuttingDown     Code = 18 // fatal: the broker is stopping
	CodeTooManyConns     Code = 19 // fatal: the broker's connection limit is reached
	CodeInternal         Code = 20 // fatal: the broker failed in a way it cannot attribute to the client
	CodeBudget           Code = 21 // fatal: the connection's user is over a budget for what it sends (memory or descriptors)
	CodeRefusedFD        Code = 22 // a passed descriptor is refused: a socket connected to the broker itself
	CodeTimeout          Code = 23 // fatal: a frame, or descriptors sent ahead of it, did not arrive whole in time
	CodeRetainRefused    Code = 24 // a retained PUB the broker will not keep (descriptors, too large, over the uid's retained budget); not delivered
	CodeBadPayload       Code = 25 // a payload descriptor (PUB flag 0x02) the broker will not route: not a sealed memfd, wrong size, over a limit; not delivered
	maxCode                   = CodeBadPayload
)

var codeNames = [...]string{
	CodeBadFrame: "bad frame", CodeBadVersion: "unsupported version", CodeUnknownOp: "unknown op",
	CodeTooLarge: "too large", CodeTooManyFDs: "too many fds", CodeMissingFDs: "missing fds",
	CodeHandshake: "handshake", CodeInvalidTopic: "invalid topic", CodeInvalidPattern: "invalid pattern",
	CodeInvalidGroup: "invalid group", CodeBadHeaders: "bad headers", CodeDuplicateSub: "duplicate subscription",
	CodeUnknownSub: "unknown subscription", CodeTooManySubs: "too many subscriptions",
	CodePermissionDenied: "permission denied", CodeReservedTopic: "reserved topic",
	CodeSlowConsumer: "slow consumer", CodeShuttingDown: "shutting down",
	CodeTooManyConns: "too many connections", CodeInternal: "internal error",
	CodeBudget: "over budget", CodeRefusedFD: "refused descriptor", CodeTimeout: "timeout",
	CodeRetainRefused: "retain refused", CodeBadPayload: "bad payload",
}

// Error returns the code's short name, such as "invalid topic".
func (c Code) Error() string {
	if c >= 1 && c <= maxCode {
		return codeNames[c]
	}
	return "error " + strconv.Itoa(int(c))
}

// Fatal reports whether the broker closes the connection after this error.
// Any ERR that comes in place of INFO ends the connection too, whatever its
// code: permission denied does when the broker refuses the connection.
func (c Code) Fatal() bool {
	switch c {
	case CodeInvalidTopic, CodeInvalidPattern, CodeInvalidGroup, CodeBadHeaders,
		CodeDuplicateSub, CodeUnknownSub, CodeTooManySubs, CodePermissionDenied, CodeReservedTopic,
		CodeRefusedFD, CodeRetainRefused, CodeBadPayload:
		return false
	}
	return true
}

// Error is a protocol error: the content of an ERR frame, or a violation
// found while decoding. Seq is the 1-based number of the frame it concerns,
// counted over the frames the client sent (HELLO is frame 1); 0 means no
// particular frame.
type Error struct {
	Code Code   `codec:"code"`
	Text string `codec:"text"`
	Seq  uint64 `codec:"seq"`
	Op   Op     `codec:"op"`
}

// Errorf returns an *Error with a formatted text.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}

// Error returns a message such as `bus: invalid topic: topic "a..b": token
// 2 is empty (frame 7, PUB)`.
//
// A text that already ends with the kind's name, as "the broker is
// shutting down" does, is not prefixed with it again.
func (e *Error) Error() string {
	s := "bus: " + e.Code.Error()
	switch {
	case e.Text == "":
	case strings.HasSuffix(e.Text, " "+e.Code.Error()):
		s = "bus: " + e.Text
	default:
		s += ": " + e.Text
	}
	if e.Seq != 0 {
		s += " (frame " + strconv.FormatUint(e.Seq, 10)
		if e.Op != 0 {
			s += ", " + e.Op.String()
		}
		s += ")"
	}
	return s
}

// Unwrap returns the Code, so errors.Is(err, wire.CodeTooLarge) works.
func (e *Error) Unwrap() error { return e.Code }

// ErrShortFrame is returned by decoders given fewer bytes than the frame
// they are decoding needs.
var ErrShortFrame = errors.New("wire: short frame")
