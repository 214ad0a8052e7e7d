package bus

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/busd/busd/bus/wire"
)

// helloLimits bound the first frame: a HELLO is a small map, and nothing
// larger is read from a connection before it has identified itself.
var helloLimits = wire.Limits{MaxPayload: 64 << 10}

// handshake reads HELLO and answers INFO, within the handshake timeout.
func (c *conn) handshake() error {
	c.sock.SetReadDeadline(deadlineIn(c.srv.cfg.HandshakeTimeout))
	c.lim = helloLimits
	f, err := c.in.Next(nil)
	if err != nil {
		if isTimeout(err) {
			return wire.Errorf(wire.CodeHandshake, "no HELLO within %v", c.srv.cfg.HandshakeTimeout)
		}
		var we *wire.Error
		if errors.As(err, &we) {
			we.Seq = 1 // the first frame could not be read
		}
		return err
	}
	c.seq++
	if f.Body != nil {
		// A HELLO near its 64 KiB limit is larger than the read buffer,
		// so it came in pieces like any large frame: its payload is them.
		f.Payload = slices.Concat(f.Body...)
		wire.PutPieces(f.Body)
		f.Body = nil
		c.releaseInput()
	}
	var hello wire.Hello
	if err := c.checkHello(&f, &hello); err != nil {
		err.Seq, err.Op = 1, f.Op
		return err
	}
	c.lim = c.srv.cfg.Limits // for the frames after HELLO, even those already read
	c.sock.SetReadDeadline(noDeadline)
	c.srv.handshakeDone(c)
	c.setName(hello.Name)
	// Before any SUB of this connection is in the index: routers read it
	// only through a subscription, published under the index's lock.
	c.fdPayloads = hello.FDPayloads
	if hello.Name != "" {
		c.log = c.log.With("client", hello.Name)
	}
	// The up event before INFO: a client that has its INFO knows its
	// event is queued for whoever watches.
	c.announced = true
	c.logConn("connection opened", "gid", c.origin.GID)
	c.connEvent(wire.SysConnUp, "", "")
	body, err := wire.AppendBody(nil, c.info())
	if err != nil {
		return fmt.Errorf("bus: encoding INFO: %w", err)
	}
	c.enqueueControl(wire.AppendControl(nil, wire.OpInfo, 0, body))
	c.stallLeft = c.srv.cfg.StallBudget
	return nil
}

// info is the INFO that answers this connection's HELLO: its id, the
// broker's limits, and the bounds of its slow-consumer policy.
func (c *conn) info() *wire.Info {
	cfg := &c.srv.cfg
	return &wire.Info{
		Version: wire.Version, Server: cfg.Name, ConnID: c.id,
		MaxPayload: cfg.Limits.MaxPayload, MaxHeaders: cfg.Limits.MaxHeaders, MaxFDs: cfg.Limits.MaxFDs,
		MaxSubs: uint32(cfg.MaxSubs), MaxPending: uint64(cfg.MaxPending), MaxPendingFDs: uint32(cfg.MaxPendingFDs),
		WriteTimeoutMS:  inUnits(cfg.WriteTimeout, time.Millisecond),
		FrameTimeoutMS:  inUnits(cfg.FrameTimeout, time.Millisecond),
		StallBudgetUS:   inUnits(cfg.StallBudget, time.Microsecond),
		LagBytes:        paceMark,
		LagFDs:          uint32(lagFDs(cfg)),
		LaggingMaxBytes: lagMark,
		LaggingMaxFDs:   uint32(laggingMaxFDs(cfg)),
		Inbox:           c.inbox,
		Receipts:        true,
		Retain:          true,
		MaxRetained:     uint32(cfg.MaxRetained),
		Names:           true,
		MaxFDPayload:    uint64(cfg.MaxFDPayload),
	}
}

// inUnits returns d in whole units, rounded up: a timeout of a fraction
// of a unit is announced as one, not as 0.
func inUnits(d, unit time.Duration) uint64 { return uint64((d + unit - 1) / unit) }

// checkHello decodes and checks the first frame.
func (c *conn) checkHello(f *wire.Frame, hello *wire.Hello) *wire.Error {
	if f.Op != wire.OpHello {
		return wire.Errorf(wire.CodeHandshake, "the first frame must be HELLO, not %v", f.Op)
	}
	h, err := wire.DecodeHello(f.Payload)
	if err != nil {
		return err.(*wire.Error)
	}
	*hello = h
	if hello.Version != wire.Version {
		return wire.Errorf(wire.CodeBadVersion, "client speaks version %d, this broker %d", hello.Version, wire.Version)
	}
	return nil
}

// handle acts on one frame after the handshake.
func (c *conn) handle(f *wire.Frame) error {
	switch f.Op {
	case wire.OpPub:
		return c.publish(f)
	case wire.OpSub:
		return c.subscribe(f)
	case wire.OpUnsub:
		return c.unsubscribe(f)
	case wire.OpPing:
		c.enqueueControl(wire.AppendControl(c.encoded[:0], wire.OpPong, f.ID, nil))
		return nil
	case wire.OpPong:
		return nil
	}
	return wire.Errorf(wire.CodeUnknownOp, "%v is not a frame a client sends after the handshake", f.Op)
}

// Non-fatal ERRs are bounded in rate per connection, errBurst at once and
// errRate a second after that: a refused frame costs the client a few
// bytes and the broker an encoded ERR several times their size, so a
// client sending bad frames in a loop would otherwise make the broker
// spend far more than it does. Past the bound the reader waits before it
// reads on, so the client is slowed, and still told about every frame.
const (
	errRate  = 1000
	errBurst = 100
)

// replyErr sends a non-fatal ERR and carries on, within the rate bound.
func (c *conn) replyErr(we *wire.Error) error {
	const interval = time.Second / errRate
	now := time.Now()
	if c.errAt.Before(now) {
		c.errAt = now
	}
	if wait := c.errAt.Sub(now) - errBurst*interval; wait > 0 {
		c.noteOnce(logErrRate, "slowing a client that sends refused frames faster than the ERR rate bound", "rate", errRate)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.quit:
			t.Stop()
			return errShuttingDown
		}
	}
	c.errAt = c.errAt.Add(interval)
	// Counted before it is queued: a client that has read the ERR (or a
	// PONG after it) finds it in Stats.
	c.srv.stats.errors.Add(1)
	if we.Code == wire.CodePermissionDenied {
		c.srv.stats.denied.Add(1)
		c.noteOnce(logDenied, "permission denied (logged once per connection)", "err", we.Text)
	}
	body, _ := wire.AppendBody(nil, we)
	c.enqueueControl(wire.AppendControl(nil, wire.OpErr, 0, body))
	c.log.Debug("refused frame", "err", we)
	return nil
}

// overBudget turns a refused charge for what this connection sends into
// the fatal ERR that tells the client which budget it ran into, logged
// once.
func (c *conn) overBudget(err error) *wire.Error {
	c.budgetHit("connection over budget", err)
	return wire.Errorf(wire.CodeBudget, "%v", err)
}
