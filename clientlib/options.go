package clientlib

import (
	"fmt"
)

// Option configures Connect.
type Option func(*options) error

type options struct {
	socket, dir, bus string
	name             string
	onError          func(*Conn, *Subscription, error)
	maxPending       int
	maxFDs           int
	subMsgs          int
	subBytes         int
}

func defaultOptions() options {
	return options{
		maxPending: 1 << 20,
		maxFDs:     1024,
		subMsgs:    1 << 16,
		subBytes:   64 << 20,
		onError:    func(*Conn, *Subscription, error) {},
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

// WithName names the client in the broker's logs.
func WithName(name string) Option {
	return func(o *options) error { o.name = name; return nil }
}

// WithErrorHandler sets the function told about errors that no call
// returns: errors the broker reports about frames sent earlier, messages a
// subscription dropped (ErrSlowConsumer), and the error that ended the
// connection, unless Close did. sub is nil when the error concerns no
// subscription. It runs on a goroutine of its own, one error at a time in
// order, so it may call anything on the connection, Close included.
func WithErrorHandler(f func(c *Conn, sub *Subscription, err error)) Option {
	return func(o *options) error {
		if f == nil {
			return fmt.Errorf("bus: WithErrorHandler(nil)")
		}
		o.onError = f
		return nil
	}
}

// WithPendingLimit bounds the bytes published but not yet written to the
// socket; Publish waits while the limit is reached (default 1 MiB: enough
// to batch thousands of messages per write, small enough that the writer
// and publishers work in parallel). A single larger message still goes.
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
// subscription and not yet handled; past either, new messages are dropped
// and ErrSlowConsumer reported (defaults: 65536 messages, 64 MiB).
func WithSubscriptionLimits(msgs, bytes int) Option {
	return func(o *options) error {
		if msgs < 1 || bytes < 1 {
			return fmt.Errorf("bus: subscription limits %d, %d are not positive", msgs, bytes)
		}
		o.subMsgs, o.subBytes = msgs, bytes
		return nil
	}
}
