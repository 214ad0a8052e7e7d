package main

import (
	"math"
	"time"

	"github.com/busd/busd/internal/cli"
)

// limitFlags are the flags that size the broker, as given.
type limitFlags struct {
	maxPayload                 uint
	maxPending, maxConns       int
	maxMemory                  int64
	writeTimeout, frameTimeout time.Duration
}

// check refuses a value the broker cannot run with, naming the flag, where
// bus.NewServer would name only a Config field, and where a -max-payload
// over 32 bits would be cut short without a word.
func (l limitFlags) check() error {
	switch {
	case l.maxPayload == 0 || l.maxPayload > math.MaxUint32:
		return cli.Usagef("-max-payload %d: give a size from 1 to %d bytes (larger payloads go in memfds: -max-fd-payload)", l.maxPayload, uint32(math.MaxUint32))
	case l.maxPending <= 0:
		return cli.Usagef("-max-pending %d: give a positive number of bytes", l.maxPending)
	case l.maxConns <= 0:
		return cli.Usagef("-max-conns %d: give a positive number of connections", l.maxConns)
	case l.maxMemory < 0:
		return cli.Usagef("-max-memory %d: give a positive number of bytes, or 0 for a quarter of the machine's memory", l.maxMemory)
	case l.writeTimeout <= 0:
		return cli.Usagef("-write-timeout %v: must be positive, such as 10s", l.writeTimeout)
	case l.frameTimeout <= 0:
		return cli.Usagef("-frame-timeout %v: must be positive, such as 10s", l.frameTimeout)
	}
	return nil
}
