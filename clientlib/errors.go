package clientlib

import (
	"errors"
	"fmt"

	"github.com/busd/busd/bus/wire"
)

// Errors of the client. Errors the broker sends are *ServerError values
// whose Code matches one of the Code sentinels below under errors.Is, and
// the client's own checks of the same rules match the same sentinels.
var (
	// ErrClosed is returned for operations on a closed connection or
	// subscription.
	ErrClosed = errors.New("bus: connection closed")
	// ErrSlowConsumer matches every error about a subscription that fell
	// behind: the *LostError reports of messages lost (given to the error
	// handler), and the broker's ERR that ends a connection because a
	// subscription made with DisconnectWhenSlow had no room for a message,
	// or because the connection accepted nothing for the broker's write
	// timeout.
	ErrSlowConsumer error = wire.CodeSlowConsumer
	// ErrNoReply is returned by Msg.Respond for a message without a reply
	// topic.
	ErrNoReply = errors.New("bus: message has no reply topic")
	// ErrNoBus is returned by Connect when the bus is not up: nothing
	// listens at its socket (no file, or a stale one) until the context
	// ends, or at once with WithNoWait.
	ErrNoBus = errors.New("bus: no bus is up")
	// ErrWriteTimeout ends a connection whose broker accepted no byte of
	// its output for the write timeout (WithWriteTimeout): the broker has
	// stopped reading it. Every call waiting on the connection then
	// returns.
	ErrWriteTimeout = errors.New("bus: write timeout, the broker stopped reading")
	// ErrConnectionLost is returned by the calls that belong to one
	// connection to the broker when that connection drops: a Request in
	// flight (the responder may have handled it; sending it again is the
	// caller's choice), a Flush or Drain waiting for the broker's answer,
	// and Msg.Respond to a request that arrived on a connection since
	// lost. The Conn itself reconnects (unless WithNoReconnect).
	ErrConnectionLost = errors.New("bus: connection to the broker lost (the Conn reconnects; sending again is the caller's choice)")
	// ErrReconnectBufferFull is returned by Publish while the connection
	// is reconnecting and the message does not fit in what is left of the
	// reconnect buffer (WithReconnectBuffer): nothing is sent, and nothing
	// waits.
	ErrReconnectBufferFull = errors.New("bus: reconnect buffer full, nothing sent (retry once reconnected)")
	// ErrNotDelivered is the cause in an *UndeliveredError for a message
	// published while reconnecting that the broker, once it had it,
	// delivered to no subscription: none was there yet (or any more), or
	// every one that was had no room for it (those were told, by a gap).
	ErrNotDelivered = errors.New("bus: reached no subscriber")

	// ErrNoResponders is returned by Request when no subscription matched
	// the request's topic: the broker says so at once, so the requester
	// does not wait for its timeout.
	ErrNoResponders = errors.New("bus: no responders")
	// ErrRequestDropped is returned by Request when subscriptions matched
	// the request's topic but every one of them was too far behind to take
	// it: the broker dropped it and says so at once. Nobody will answer
	// this request; retrying later may work.
	ErrRequestDropped = errors.New("bus: request dropped, every responder is too far behind (retrying later may work)")

	// ErrNoSuchConn is returned by Conn.Peer when no connection with the
	// id is open on the bus: it has closed (ids are never reused within a
	// broker's run), or never existed. 0 is the broker's own id, not a
	// connection's.
	ErrNoSuchConn = errors.New("bus: no such connection")
	// ErrNoRoom is returned by Conn.Peer when the broker has no room in
	// this user's descriptor budget for the pidfd the answer carries (the
	// user holds many descriptors in the broker, or has many answers
	// unread). Retrying later may work.
	ErrNoRoom = errors.New("bus: the broker has no room for the answer now (retrying later may work)")
	// ErrPeerExited is returned by Peer.Verify and Peer.Exe when the
	// peer's process has exited: its pid may belong to another process by
	// now, so nothing read about that pid is about the peer.
	ErrPeerExited = errors.New("bus: the peer's process has exited")
	// ErrCannotVerify is returned by Peer.Verify and Peer.Exe when the
	// peer's process cannot be checked from here: the broker holds no
	// pidfd for it (Linux before 6.5), or it is in a pid namespace this
	// process cannot see.
	ErrCannotVerify = errors.New("bus: cannot verify the peer's process")

	// ErrNoListener is returned by DialStream when no process listens on the
	// stream's name. It matches ErrNoResponders too.
	ErrNoListener = fmt.Errorf("%w: no stream listener", ErrNoResponders)
	// ErrStreamRefused is returned by DialStream when the listener refused
	// the stream: its backlog was full, or it was closing.
	ErrStreamRefused = errors.New("bus: stream refused")
	// ErrStreamAborted is returned by a TopicReader whose writer ended the
	// stream with CloseWithError: the bytes before it are all there, but the
	// stream is not complete.
	ErrStreamAborted = errors.New("bus: topic stream aborted by its writer")
	// ErrStreamGap is returned by a TopicReader that missed part of its
	// stream: it fell behind and lost messages (in its subscription's
	// queue or in the broker), it joined after the stream began, or two
	// writers wrote to its topic.
	ErrStreamGap = errors.New("bus: topic stream has a gap")

	// ErrInvalidTopic matches topics that break the grammar (docs/TOPICS.md).
	ErrInvalidTopic error = wire.CodeInvalidTopic
	// ErrInvalidPattern matches subscription patterns that break the grammar.
	ErrInvalidPattern error = wire.CodeInvalidPattern
	// ErrInvalidGroup matches bad queue group names.
	ErrInvalidGroup error = wire.CodeInvalidGroup
	// ErrTooLarge matches messages over the broker's announced limits.
	ErrTooLarge error = wire.CodeTooLarge
	// ErrTooManyFiles matches messages with more files than the broker takes.
	ErrTooManyFiles error = wire.CodeTooManyFDs
	// ErrTooManySubscriptions matches subscriptions over the broker's
	// per-connection limit.
	ErrTooManySubscriptions error = wire.CodeTooManySubs
	// ErrBadPayload matches a payload descriptor that failed its check.
	// Received: a message whose payload came in a memfd (see "Large
	// payloads" in the package doc) that is not a memfd, lacks a seal, or
	// holds another size than its message announced; the message is
	// dropped, its descriptors closed, and the error handler gets an error
	// matching ErrBadPayload, naming the subscription, that wraps the
	// memfd package's error (memfd.ErrNotMemfd, memfd.ErrNotSealed,
	// memfd.ErrWrongSize); the connection continues. Published: a
	// Msg.PayloadFile that is not a sealed memfd, or given with Data; and
	// the broker's refusal of a payload descriptor (ERR bad payload), as a
	// *ServerError.
	ErrBadPayload error = wire.CodeBadPayload
	// ErrPermissionDenied matches what the broker's policy forbids (a
	// publish, subscription, reply, listen or dial), a publish or
	// subscription into another connection's inbox, and a connection the
	// broker's allow-lists refuse.
	ErrPermissionDenied error = wire.CodePermissionDenied
)

// ServerError is an error the broker reported in an ERR frame.
type ServerError = wire.Error
