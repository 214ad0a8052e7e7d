package bus

import "errors"

// Sentinel errors of the broker.
var (
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("bus: server closed")
	// ErrBadConfig is wrapped by Config.Validate's errors.
	ErrBadConfig = errors.New("bus: bad config")
)
