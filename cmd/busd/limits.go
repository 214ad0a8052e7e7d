package main

import (
	"errors"
	"math"
	"strings"
	"time"

	"github.com/busd/busd/bus"

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

// configFlags names, for each Config field a flag sets, the flag.
var configFlags = strings.NewReplacer(
	"Limits.MaxPayload", "-max-payload",
	"MaxFDPayload", "-max-fd-payload",
	"MaxPending", "-max-pending",
	"MaxMemory", "-max-memory",
	"MaxConns", "-max-conns",
	"MaxFDs", "the descriptor limit (ulimit -n)",
	"FrameTimeout", "-frame-timeout",
	"WriteTimeout", "-write-timeout",
	"StallBudget", "-stall-budget",
)

// validateFlags is cfg.Validate in the words of busd's flags: a combination
// of flags the broker cannot run with is a usage error that names them.
func validateFlags(cfg *bus.Config) error {
	err := cfg.Validate()
	if err == nil || !errors.Is(err, bus.ErrBadConfig) {
		return err
	}
	why := strings.TrimPrefix(err.Error(), bus.ErrBadConfig.Error()+": ")
	return cli.Usagef("%s", configFlags.Replace(why))
}
