package clientlib

import (
	"context"
	"fmt"
	"strings"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// Last wills (docs/PROTOCOL.md section 3.5). A Conn made WithWill asks the
// broker, as soon as it is connected and again after every reconnect, to
// publish a message for it if the connection ends without a clean
// goodbye; Close says goodbye (it clears the will before it closes), so
// the broker publishes the will when the process crashes or is killed,
// when the connection is cut, and when the broker closes it (slow
// consumer, over budget, protocol error), but not after Close, nor when
// the broker itself stops.

// willSpec is the will WithWill sets.
type willSpec struct {
	req wire.WillRequest
}

// WillOption configures the will WithWill sets.
type WillOption func(*willSpec) error

// WillRetained makes the broker keep the will, once it publishes it, as
// its topic's retained value (see PublishRetained): late subscribers see
// it too. If the broker's retained budget for the connection's user has
// no room for it then, it is delivered without being kept.
func WillRetained() WillOption {
	return func(w *willSpec) error { w.req.Retain = true; return nil }
}

// WillHeader gives the will a header.
func WillHeader(h Header) WillOption {
	return func(w *willSpec) error {
		b, err := encodeHeader(nil, h)
		if err != nil {
			return err
		}
		w.req.Headers = b
		return nil
	}
}

// WithWill gives the connection a last will: the broker publishes data to
// topic, from this connection (its Origin), when the connection ends other
// than by Close. Connect sets it before it returns, and fails if the
// broker refuses it: a topic the broker's policy does not let this user
// publish to (an error wrapping ErrPermissionDenied), a will larger than
// the broker's max_retained (64 KiB by default, topic, header and data
// together), or a broker that predates wills (ErrNoResponders). The will
// is set again, before anything else is sent, after every reconnect; a
// broker that refuses it then (a new policy, a smaller max_retained) is
// reported to the error handler (WithErrorHandler), the Conn carrying on
// without a will. The
// will is charged to the user's budget at the broker while it is set.
func WithWill(topic string, data []byte, opts ...WillOption) Option {
	return func(o *options) error {
		if err := topics.ValidTopic(topic); err != nil {
			return fmt.Errorf("%w: the will's topic: %w", ErrInvalidTopic, err)
		}
		w := &willSpec{req: wire.WillRequest{Topic: topic, Payload: data}}
		for _, opt := range opts {
			if opt != nil {
				if err := opt(w); err != nil {
					return err
				}
			}
		}
		o.will = w
		return nil
	}
}

// setWill asks the broker to set the will, and waits for its answer.
func (c *Conn) setWill(ctx context.Context) error {
	w := c.opts.will
	body, err := wire.AppendBody(nil, &w.req)
	if err != nil {
		return fmt.Errorf("bus: setting the last will: %w", err)
	}
	r, err := c.askBroker(ctx, wire.SysReqWill, body)
	if err != nil {
		return fmt.Errorf("bus: setting the last will: %w", err)
	}
	defer r.CloseFiles()
	return willError(r)
}

// willError returns the error the broker's answer r to a will request
// says, nil if it set the will.
func willError(r *Msg) error {
	switch status := r.Header.Get(wire.StatusHeader); status {
	case "":
		return nil
	case wire.StatusNoResponders:
		return fmt.Errorf("%w: this broker does not answer %s (it predates last wills)", ErrNoResponders, wire.SysReqWill)
	case wire.StatusForbidden:
		return fmt.Errorf("bus: setting the last will: %w: %s", ErrPermissionDenied, r.Header.Get(wire.ReasonHeader))
	default:
		return fmt.Errorf("bus: setting the last will: the broker answered status %s: %s", status, r.Header.Get(wire.ReasonHeader))
	}
}

// willToken ends the reply topic of the will requests a reconnect and
// Close send without waiting: "<inbox>.will", which no request's token
// is.
const willToken = ".will"

// willAnswered handles the broker's answer to a will request sent without
// waiting (willFrame): a refusal, after a reconnect, goes to the error
// handler, since nobody waits for it. It reports whether m was that
// answer.
func (c *Conn) willAnswered(m *Msg) bool {
	if c.opts.will == nil || m.Origin.Conn != 0 || !strings.HasSuffix(m.Topic, willToken) {
		return false
	}
	if err := willError(m); err != nil {
		// err names the will and the reason; say when, and what it means.
		c.cb.push(nil, fmt.Errorf("%w (asked again after a reconnect: this connection has no will until it reconnects to a broker that takes it)", err))
	}
	m.CloseFiles()
	return true
}

// willFrame returns the PUB that sets the will (clear: clears it) on a
// connection whose INFO is info, its answer going to willAnswered; nil if
// there is no will, or no inbox to answer into.
func (c *Conn) willFrame(info *wire.Info, clear bool) []byte {
	if c.opts.will == nil || info.Inbox == "" {
		return nil
	}
	var body []byte
	if !clear {
		body, _ = wire.AppendBody(nil, &c.opts.will.req) // a str, bins and a bool: it cannot fail
	}
	return wire.AppendPub(nil, wire.SysReqWill, info.Inbox+willToken, nil, body, 0)
}

// clearWillLocked queues the request that clears the will, the clean
// goodbye, for Close to flush before it closes the socket: the broker
// handles it before it sees the connection end. Under c.mu, connected.
func (c *Conn) clearWillLocked() {
	if f := c.willFrame(c.info.Load(), true); f != nil {
		if c.out.Len() == 0 {
			c.wake()
		}
		c.out.Append(f)
		c.seq++
	}
}
