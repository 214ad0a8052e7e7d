package bus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/busd/busd/bus/wire"
)

// SlowConsumerPolicy says what the broker does when a connection's pending
// output exceeds Config.MaxPending because it reads slower than others
// publish to it.
type SlowConsumerPolicy int

const (
	// Disconnect sends the slow connection an ERR (slow consumer) and closes
	// it, so a stuck process cannot hold the broker's memory; its client can
	// reconnect. Other connections are not affected.
	Disconnect SlowConsumerPolicy = iota
	// DropNew keeps the connection and drops the messages that do not fit,
	// counting them (Stats.Dropped).
	DropNew
)

// Config configures a Server. Use DefaultConfig and change what you need.
type Config struct {
	// Name identifies the broker in INFO and logs.
	Name string
	// Limits bound every frame; they are announced to clients in INFO.
	Limits wire.Limits
	// MaxConns bounds the connections served at once.
	MaxConns int
	// MaxSubs bounds the subscriptions of one connection.
	MaxSubs int
	// MaxPending bounds the bytes waiting to be written to one connection.
	// It must exceed the largest frame, or large messages could never go.
	MaxPending int
	// MaxPendingFDs bounds the descriptors waiting to be written to one
	// connection; over it the connection is a slow consumer too. The broker
	// holds every pending descriptor open, so this keeps a stalled reader
	// from exhausting the broker's descriptor limit.
	MaxPendingFDs int
	// SlowConsumer is the policy for a connection over MaxPending.
	SlowConsumer SlowConsumerPolicy
	// HandshakeTimeout is how long a new connection has to send HELLO.
	HandshakeTimeout time.Duration
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration busd runs with by default.
func DefaultConfig() Config {
	return Config{
		Name:             "busd",
		Limits:           wire.DefaultLimits,
		MaxConns:         4096,
		MaxSubs:          65536,
		MaxPending:       256 << 20, // four of the largest frames: one being written, more queued
		MaxPendingFDs:    4096,
		SlowConsumer:     Disconnect,
		HandshakeTimeout: 5 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Limits.MaxFDs > wire.MaxFDsPerFrame:
		return fmt.Errorf("%w: Limits.MaxFDs %d is over the kernel's %d", ErrBadConfig, c.Limits.MaxFDs, wire.MaxFDsPerFrame)
	case c.Limits.MaxPayload == 0:
		return fmt.Errorf("%w: Limits.MaxPayload is 0", ErrBadConfig)
	case c.MaxConns < 1 || c.MaxSubs < 1 || c.MaxPendingFDs < int(c.Limits.MaxFDs):
		return fmt.Errorf("%w: MaxConns and MaxSubs must be positive, MaxPendingFDs at least Limits.MaxFDs", ErrBadConfig)
	case c.MaxPending < c.Limits.MaxFrame():
		return fmt.Errorf("%w: MaxPending %d is below the largest frame (%d bytes)", ErrBadConfig, c.MaxPending, c.Limits.MaxFrame())
	case c.HandshakeTimeout <= 0:
		return fmt.Errorf("%w: HandshakeTimeout must be positive", ErrBadConfig)
	case c.SlowConsumer != Disconnect && c.SlowConsumer != DropNew:
		return fmt.Errorf("%w: unknown SlowConsumer policy %d", ErrBadConfig, c.SlowConsumer)
	}
	return nil
}
