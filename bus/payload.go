package bus

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock/memfd"
)

// Payloads in a memfd (docs/PROTOCOL.md section 6.1). A PUB with
// wire.PubPayloadFD carries its payload as its first descriptor, a sealed
// memfd, and the payload's size as its 8-byte payload section. The broker
// never maps, reads or copies it: it checks the descriptor (fstat and
// F_GET_SEALS, no page is touched), then routes it like any descriptor,
// so every receiver gets a descriptor of the same file.
//
// The pages are not the broker's: they were charged to whoever wrote
// them (the publisher's memory cgroup). What the broker does own is that
// its copy keeps them alive after the publisher has let go, for as long
// as a receiver's queue, or a request held for an activation, holds the
// message. So the publisher's uid is charged the payload's size
// (UserBudget.FDPayload) from the moment the PUB is accepted until the
// closer has closed the broker's last copy of the descriptor (fdSet,
// closer.go): every path that ends a message (written, dropped, its
// receiver gone, shutdown) goes through that, so the charge cannot
// outlive the descriptor.

// payloadFDSize returns the size a PUB with wire.PubPayloadFD announces:
// its payload section, a big-endian uint64 (the header check made it 8
// bytes). A frame read in pieces (a large headers section) has it at the
// end of its last piece.
func payloadFDSize(f *wire.Frame) uint64 {
	p := f.Payload
	if f.Body != nil {
		var b [wire.PayloadFDLen]byte
		n := len(b)
		for i := len(f.Body) - 1; i >= 0 && n > 0; i-- {
			piece := f.Body[i]
			k := min(n, len(piece))
			copy(b[n-k:n], piece[len(piece)-k:])
			n -= k
		}
		return binary.BigEndian.Uint64(b[:])
	}
	return binary.BigEndian.Uint64(p)
}

// checkPayloadFD checks the payload descriptor of a PUB with
// wire.PubPayloadFD, set's first, and charges its size to the
// publisher's uid, on set, until set's descriptors are closed. A refusal
// is a non-fatal bad payload naming the problem.
func (c *conn) checkPayloadFD(f *wire.Frame, set *fdSet) error {
	size := payloadFDSize(f)
	limit := c.srv.cfg.MaxFDPayload
	switch {
	case limit == 0:
		return wire.Errorf(wire.CodeBadPayload, "this broker takes no payloads in descriptors (max_fd_payload is 0); send it inline")
	case size > uint64(limit):
		return wire.Errorf(wire.CodeBadPayload, "payload of %d bytes in a descriptor; the limit is %d (max_fd_payload)", size, limit)
	}
	if err := memfd.Verify(set.fds[0], int64(size)); err != nil {
		return wire.Errorf(wire.CodeBadPayload, "the payload descriptor (the first of %d): %s", len(set.fds), payloadProblem(err))
	}
	if err := c.chargePayload(int64(size)); err != nil {
		if errors.Is(err, errShuttingDown) {
			return err
		}
		return wire.Errorf(wire.CodeBadPayload, "payload of %d bytes in a descriptor: %v", size, err)
	}
	set.payload = int64(size)
	c.srv.stats.fdPayloads.Add(1)
	return nil
}

// payloadProblem says what memfd.Verify found, for the client: the
// memfd package's wording without its prefix.
func payloadProblem(err error) string {
	switch {
	case errors.Is(err, memfd.ErrNotMemfd):
		return "not a memfd: " + err.Error()
	case errors.Is(err, memfd.ErrNotSealed):
		return "not sealed: " + err.Error()
	case errors.Is(err, memfd.ErrWrongSize):
		return "size differs from the announced one: " + err.Error()
	}
	return err.Error()
}

// chargePayload charges n bytes of held payloads to c's user. Over the
// budget, the reader waits for payloads the broker holds for the user to
// be closed, at most FrameTimeout, as it waits for room for descriptors
// (fdpace.go): receivers that keep up give the budget back within
// moments, so a publisher that is only ahead of them is paced, and only
// one whose payloads stay held (by receivers that do not read) is
// refused.
func (c *conn) chargePayload(n int64) error {
	led := c.srv.led
	freed, err := led.chargeOrWait(c.acct, kFDPayload, n)
	if freed == nil {
		return err
	}
	c.srv.stats.payloadWaits.Add(1)
	timer := time.NewTimer(c.srv.cfg.FrameTimeout)
	defer timer.Stop()
	for freed != nil {
		select {
		case <-freed:
		case <-c.quit:
			return errShuttingDown
		case <-timer.C:
			return err
		}
		freed, err = led.chargeOrWait(c.acct, kFDPayload, n)
	}
	return err
}
