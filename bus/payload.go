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
// its copies keep them alive after the publisher has let go. Each is
// charged (UserBudget.FDPayload, the payload's size) to whoever makes the
// broker hold it:
//
//   - the publisher's uid, while the broker holds the PUB's descriptor to
//     route it: from the moment the PUB is accepted until the router has
//     queued every copy and let go of it, or, for a request held for an
//     activation, until it is delivered or fails (fdSet.holds). Over its
//     budget a publisher waits for its own payloads in flight, at most
//     FrameTimeout (chargePayload), so it is paced, never frozen by a
//     receiver;
//   - each receiver's uid, for its copy while the copy waits in its
//     queue, until it is written or dropped, whichever way
//     (payloadCopy). Without room, that receiver loses the message under
//     its subscription's slow-consumer policy, at once: output queued for
//     a receiver is the receiver's, and nobody waits for it;
//   - a monitor's uid, for its own duplicate of the descriptor, until the
//     closer has closed it (monitorPayload, monitor.go).

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
// publisher's uid while the broker holds set to route it (the router's
// hold, which publishFDs drops: fdSet.unhold). A refusal is a non-fatal
// bad payload naming the problem.
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
	set.size = int64(size)
	set.holds.Store(1) // the router's
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
// be given back, at most FrameTimeout, as it waits for room for
// descriptors (fdpace.go). What the user is charged as a publisher is
// given back as soon as its PUBs are routed, whatever their receivers do
// with their copies, so this paces a publisher with many payloads in
// flight (its other connections', requests held for activations), and
// a slow receiver cannot make it wait: its copies are its own charge.
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

// refuseFDPayloadLocked loses, for s, a message whose payload is in a
// memfd, s's connection not having said in its HELLO that it takes those
// (wire.Hello.FDPayloads): a client written before them would take the
// 8-byte size for the payload, or the flag for a protocol error. (A queue
// group passes it to another member instead: enqueueMsg.) The loss is
// reported at once by a gap notice if there is room, else as soon as
// there is, whatever s's policy: the connection is not behind, so closing
// it as a slow consumer would be wrong. c.mu is held.
func (c *conn) refuseFDPayloadLocked(s *subscription) { c.lossNowLocked(s, lossFDPayload) }

// refuseMonitorPayload loses, for s, a monitor, a message whose payload is
// in a memfd, its connection's user having no room for its own copy of
// the descriptor (monitorPayload). Reported as refuseFDPayloadLocked does.
func (c *conn) refuseMonitorPayload(s *subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateOpen && !s.removed {
		c.lossNowLocked(s, lossMonitorPayload)
	}
}

// lossNowLocked counts a message s lost for reason, and queues its gap
// notice at once if there is room, else as soon as there is. c.mu is held.
func (c *conn) lossNowLocked(s *subscription, reason lossReason) {
	c.srv.stats.dropped.Add(1)
	c.dropped++
	s.lost.Add(1)
	s.reason = reason
	c.noteLossLocked(s, 1)
	if !s.inGaps {
		s.inGaps = true
		c.gaps = append(c.gaps, s)
	}
	c.flushGapsLocked()
}
