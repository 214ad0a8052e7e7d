package bus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// Last wills (docs/PROTOCOL.md section 3.5). A "$SYS.req.will" request
// sets the connection's will, a message the broker publishes for it, as
// if the connection had published it, when the connection ends with the
// will still set; clearing it first (an empty request) is the clean
// goodbye. The broker itself stopping publishes no will.
//
// The will is the reader's: set by its requests and published by its
// finish, so it needs no lock. While set it is charged to the
// connection's user as input bytes (what the broker holds of what the
// user sent), bounded by Config.MaxRetained like a retained value.

// willMsg is a connection's last will.
type willMsg struct {
	topic   string
	hdrs    wire.Headers
	payload []byte
	retain  bool
	cost    int64 // charged to the connection's input bytes
}

// answerWill answers "$SYS.req.will": it sets or clears c's will, and
// answers with an empty MSG when done.
func (c *conn) answerWill(payload []byte) sysAnswer {
	req, err := wire.DecodeWillRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	if req.Topic == "" {
		c.setWill(nil)
		return sysAnswer{}
	}
	if a, ok := c.checkWill(&req); !ok {
		return a
	}
	w := &willMsg{topic: req.Topic, hdrs: wire.Headers(req.Headers), payload: req.Payload, retain: req.Retain,
		cost: retainCost(len(req.Topic), len(req.Headers), len(req.Payload))}
	if err := c.srv.led.charge(c.acct, kInput, w.cost); err != nil {
		c.budgetHit("last will refused over budget", err)
		return sysAnswer{status: wire.StatusNoRoom, reason: "no room for the will: " + err.Error()}
	}
	c.setWill(w)
	return sysAnswer{}
}

// checkWill checks a will to set: its topic, headers and size, and that
// the connection may publish it now (it is checked again when it is
// published). If not, it returns the answer saying why.
func (c *conn) checkWill(req *wire.WillRequest) (sysAnswer, bool) {
	topic := req.Topic
	if err := topics.ValidTopic(topic); err != nil {
		return badRequest("the will's " + err.Error()), false
	}
	for _, p := range []string{SysPrefix, wire.InboxPrefix, wire.GroupOnlyPrefix} {
		if strings.HasPrefix(topic, p) {
			return badRequest(fmt.Sprintf("the will's topic %q: a will is not published to topics starting with %q", topic, p)), false
		}
	}
	if req.Retain && strings.HasPrefix(topic, wire.NamePrefix) {
		return badRequest(fmt.Sprintf("the will's topic %q: topics starting with %q keep no retained value", topic, wire.NamePrefix)), false
	}
	if len(req.Headers) > 0 {
		if err := wire.Headers(req.Headers).Check(); err != nil {
			return badRequest("the will's headers: " + err.Error()), false
		}
	}
	if n := len(topic) + len(req.Headers) + len(req.Payload); n > c.srv.cfg.MaxRetained {
		return badRequest(fmt.Sprintf("the will is %d bytes (topic, headers and payload); max_retained is %d", n, c.srv.cfg.MaxRetained)), false
	}
	if _, err := c.checkPublish(topic, nil); err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return sysAnswer{status: wire.StatusForbidden, reason: we.Text}, false
		}
		return sysAnswer{status: wire.StatusForbidden, reason: err.Error()}, false
	}
	return sysAnswer{}, true
}

// setWill replaces c's will with w (nil: none), ending the old one's
// charge; w is charged already.
func (c *conn) setWill(w *willMsg) {
	if old := c.will; old != nil {
		c.srv.led.uncharge(c.acct, kInput, old.cost)
	}
	c.will = w
}

// publishWill publishes c's will, if it has one, as c's own PUB, unless
// the connection closes because the broker stops; it ends the will's
// charge either way. A will whose topic the policy no longer lets c
// publish to is dropped; a retained will the store refuses (over budget)
// is delivered without being retained. Run by finish, on the reader.
func (c *conn) publishWill(reason string) {
	w := c.will
	if w == nil {
		return
	}
	defer c.setWill(nil)
	if reason == wire.ReasonShutdown {
		return
	}
	f := wire.Frame{
		Header: wire.Header{Op: wire.OpPub, TopicLen: uint16(len(w.topic)), HdrLen: uint32(len(w.hdrs)), PayloadLen: uint32(len(w.payload))},
		Topic:  []byte(w.topic), Headers: w.hdrs, Payload: w.payload,
	}
	if w.retain {
		f.Flags = wire.PubRetain
	}
	err := c.route(&f, nil)
	if errors.Is(err, wire.CodeRetainRefused) {
		c.log.Warn("last will delivered without being retained", "topic", w.topic, "err", err)
		f.Flags = 0
		err = c.route(&f, nil)
	}
	if err != nil {
		c.log.Warn("last will not published", "topic", w.topic, "err", err)
	} else {
		c.log.Debug("last will published", "topic", w.topic, "reason", reason)
	}
	for i, r := range c.wakes {
		r.tryFlush()
		c.wakes[i] = nil
	}
	c.wakes = c.wakes[:0]
	c.stalls = c.stalls[:0] // the connection is going: it waits for nobody
}
