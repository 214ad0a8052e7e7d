package clientlib

import (
	"fmt"
	"time"

	"github.com/busd/busd/bus/wire"
)

// Option configures Connect.
type Option func(*options) error

type options struct {
	socket, dir, bus string
	name             string
	onError          func(*Conn, *Subscription, error)
	onErrorSet       bool // the caller gave one: only then are buffered messages kept for receipts
	maxPending       int
	maxFDs           int
	subMsgs          int
	subBytes         int
	writeTimeout     time.Duration
	trusted          []int // uids trusted with the bus besides ours and root (trust.go)
	noWait           bool  // Connect fails at once when the bus is not up (discover.go)
	noReconnect      bool
	reconnectBuf     int
	onDisconnect     func(*Conn, error)
	onReconnect      func(*Conn, Restored)
	onClosed         func(*Conn)
	will             *willSpec // WithWill (will.go)
	largeThreshold   int       // WithLargePayloadThreshold (largepayload.go); < 0: never
	largeLimit       int64     // WithLargePayloadLimit (largepayload.go)
}

func defaultOptions() options {
	return options{
		maxPending:     1 << 20,
		maxFDs:         1024,
		subMsgs:        1 << 16,
		subBytes:       64 << 20,
		writeTimeout:   10 * time.Second,
		reconnectBuf:   8 << 20,
		largeThreshold: DefaultLargePayloadThreshold,
		largeLimit:     DefaultLargePayloadLimit,
		onError:        func(*Conn, *Subscription, error) {},
	}
}

// WithSocket connects to the bus listening at path, overriding $BUSD_SOCKET
// and the bus directory.
func WithSocket(path string) Option {
	return func(o *options) error { o.socket = path; return nil }
}

// WithDir looks for buses in dir instead of Dir().
func WithDir(dir string) Option {
	return func(o *options) error { o.dir = dir; return nil }
}

// WithBus connects to the bus named name (socket dir/name.sock) instead of
// DefaultBus.
func WithBus(name string) Option {
	return func(o *options) error { o.bus = name; return nil }
}

// WithNoWait makes Connect fail at once, with an error matching ErrNoBus,
// when the bus is not up (no socket, or one that refuses connections),
// instead of waiting for it until its context ends.
func WithNoWait() Option {
	return func(o *options) error { o.noWait = true; return nil }
}

// WithName names the client in the broker's logs. The name is at most
// wire.MaxNameLen bytes: the broker refuses a longer one.
func WithName(name string) Option {
	return func(o *options) error {
		if len(name) > wire.MaxNameLen {
			return fmt.Errorf("bus: name of %d bytes; the limit is %d", len(name), wire.MaxNameLen)
		}
		o.name = name
		return nil
	}
}

// WithErrorHandler sets the function told about errors that no call
// returns: errors the broker reports about frames sent earlier, messages a
// subscription lost (a *LostError, matching ErrSlowConsumer), and the
// error that ended the connection for good, unless Close did. sub is nil
// when the error concerns no subscription. It runs on a goroutine of its
// own, one call at a time, in order with the disconnect, reconnect and
// closed handlers, so it may call anything on the connection, Close
// included.
func WithErrorHandler(f func(c *Conn, sub *Subscription, err error)) Option {
	return func(o *options) error {
		if f == nil {
			return fmt.Errorf("bus: WithErrorHandler(nil)")
		}
		o.onError, o.onErrorSet = f, true
		return nil
	}
}

// WithPendingLimit bounds the bytes published but not yet written to the
// socket; Publish waits while the limit is reached (default 1 MiB: enough
// to batch thousands of messages per write, small enough that the writer
// and publishers work in parallel). A single larger message still goes.
// A payload that goes in a memfd counts at its size while its PUB waits,
// though only the PUB goes through the socket: the memfd is this
// process's memory until the broker has it.
func WithPendingLimit(bytes int) Option {
	return func(o *options) error {
		if bytes < 1 {
			return fmt.Errorf("bus: pending limit %d is not positive", bytes)
		}
		o.maxPending = bytes
		return nil
	}
}

// WithSubscriptionLimits bounds the messages and bytes queued on one
// subscription and not yet handled; past either, new messages are dropped,
// counted in Subscription.Dropped and reported to the error handler as a
// *LostError (defaults: 65536 messages, 64 MiB). No slow-consumer policy
// changes this: DisconnectWhenSlow is about the broker's queue. A payload
// that came in a memfd counts at its size, in Data or as a PayloadFile,
// and may be larger than the byte bound (it is bounded by the broker's
// max_fd_payload, not max_payload): it is taken when nothing else waits,
// so a 100 MiB payload arrives under the default bound, one at a time.
func WithSubscriptionLimits(msgs, bytes int) Option {
	return func(o *options) error {
		if msgs < 1 || bytes < 1 {
			return fmt.Errorf("bus: subscription limits %d, %d are not positive", msgs, bytes)
		}
		o.subMsgs, o.subBytes = msgs, bytes
		return nil
	}
}

// WithWriteTimeout bounds how long the connection waits for the broker to
// accept a byte while output is waiting (default 10 s). A broker that
// accepts nothing for that long has stopped reading this connection: the
// connection ends with an error matching ErrWriteTimeout, and every call
// waiting on it (Publish waiting for room, Flush, Request) returns. The
// stall is noticed between d and 2d after the broker took its last byte.
// A broker that reads slowly but keeps reading is waited for.
func WithWriteTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("bus: write timeout %v is not positive", d)
		}
		o.writeTimeout = d
		return nil
	}
}

// WithNoReconnect turns reconnecting off: when the connection to the broker
// drops, the Conn ends, as after Close but with the reason in Err, and every
// subscription ends with it.
func WithNoReconnect() Option {
	return func(o *options) error { o.noReconnect = true; return nil }
}

// WithReconnectBuffer bounds the bytes of messages published while the
// connection is reconnecting, kept to be sent once it is back, each
// counted with 64 bytes for its record (default 8 MiB; 0 buffers
// nothing). A payload kept in a memfd (see "Large payloads" in the
// package doc) counts at its size: it is this process's memory until it
// is sent. Past the bound Publish fails at once with an
// error matching ErrReconnectBufferFull. The files of buffered messages are
// kept open (duplicates, as always) until they are sent, at most as many
// as WithPendingLimit's descriptor bound allows (1024).
func WithReconnectBuffer(bytes int) Option {
	return func(o *options) error {
		if bytes < 0 {
			return fmt.Errorf("bus: reconnect buffer %d is negative", bytes)
		}
		o.reconnectBuf = bytes
		return nil
	}
}

// WithDisconnectHandler sets the function told when the connection to the
// broker drops and the Conn starts reconnecting; err says why (io.EOF for a
// broker that went away, an error matching ErrSlowConsumer for one that
// dropped this connection for falling behind, in which case messages were
// lost). Messages published to the Conn's subscriptions from then until
// the reconnect are not delivered. It is not told of Close, nor of a drop
// the Conn does not reconnect after (see WithClosedHandler).
func WithDisconnectHandler(f func(c *Conn, err error)) Option {
	return func(o *options) error { o.onDisconnect = f; return nil }
}

// WithReconnectHandler sets the function told when the Conn has
// reconnected and restored its subscriptions; restored says what was
// restored and the new connection id. The subscriptions' SUBs go out
// before anything else on the new connection; like those of any new
// subscription, they are in place at the broker once a Flush made after
// returns (the handler may call Flush).
func WithReconnectHandler(f func(c *Conn, restored Restored)) Option {
	return func(o *options) error { o.onReconnect = f; return nil }
}

// WithClosedHandler sets the function told, once, when the Conn has ended
// for good: by Close, or by an error it does not reconnect after (Err says
// which).
func WithClosedHandler(f func(c *Conn)) Option {
	return func(o *options) error { o.onClosed = f; return nil }
}
