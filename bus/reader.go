package bus

import (
	"fmt"

	"github.com/busd/busd/bus/wire"
)

// handshake reads HELLO and answers INFO, within the handshake timeout.
func (c *conn) handshake() error {
	c.sock.SetReadDeadline(deadlineIn(c.srv.cfg.HandshakeTimeout))
	f, err := c.in.Next(nil)
	if err != nil {
		if isTimeout(err) {
			return wire.Errorf(wire.CodeHandshake, "no HELLO within %v", c.srv.cfg.HandshakeTimeout)
		}
		if we, ok := err.(*wire.Error); ok {
			we.Seq = 1 // the first frame could not be read
		}
		return err
	}
	c.seq++
	var hello wire.Hello
	if err := c.checkHello(&f, &hello); err != nil {
		err.Seq, err.Op = 1, f.Op
		return err
	}
	c.sock.SetReadDeadline(noDeadline)
	if hello.Name != "" {
		c.log = c.log.With("client", hello.Name)
	}
	lim := c.srv.cfg.Limits
	body, err := wire.AppendBody(nil, &wire.Info{
		Version: wire.Version, Server: c.srv.cfg.Name, ConnID: c.id,
		MaxPayload: lim.MaxPayload, MaxHeaders: lim.MaxHeaders, MaxFDs: lim.MaxFDs,
		MaxSubs: uint32(c.srv.cfg.MaxSubs),
	})
	if err != nil {
		return fmt.Errorf("bus: encoding INFO: %w", err)
	}
	c.enqueueControl(wire.AppendControl(nil, wire.OpInfo, 0, body))
	c.log.Debug("connected")
	return nil
}

// checkHello decodes and checks the first frame.
func (c *conn) checkHello(f *wire.Frame, hello *wire.Hello) *wire.Error {
	if f.Op != wire.OpHello {
		return wire.Errorf(wire.CodeHandshake, "the first frame must be HELLO, not %v", f.Op)
	}
	if err := wire.DecodeBody(f.Payload, hello); err != nil {
		return err.(*wire.Error)
	}
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
		c.enqueueControl(wire.AppendControl(nil, wire.OpPong, f.ID, nil))
		return nil
	case wire.OpPong:
		return nil
	}
	return wire.Errorf(wire.CodeUnknownOp, "%v is not a frame a client sends after the handshake", f.Op)
}
