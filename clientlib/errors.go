package clientlib

import (
	"errors"

	"github.com/busd/busd/bus/wire"
)

// Errors of the client. Errors the broker sends are *ServerError values
// whose Code matches one of the Code sentinels below under errors.Is, and
// the client's own checks of the same rules match the same sentinels.
var (
	// ErrClosed is returned for operations on a closed connection or
	// subscription.
	ErrClosed = errors.New("bus: connection closed")
	// ErrSlowConsumer is reported to the error handler when a subscription
	// drops messages because its queue is full.
	ErrSlowConsumer = errors.New("bus: slow consumer, messages dropped")
	// ErrNoReply is returned by Msg.Respond for a message without a reply
	// topic.
	ErrNoReply = errors.New("bus: message has no reply topic")
	// ErrNoBus is returned by Connect when no socket path is configured and
	// none can be derived from the environment.
	ErrNoBus = errors.New("bus: no bus socket")

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
	// ErrPermissionDenied matches publishes and subscriptions policy forbids.
	ErrPermissionDenied error = wire.CodePermissionDenied
)

// ServerError is an error the broker reported in an ERR frame.
type ServerError = wire.Error
