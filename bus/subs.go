package bus

import (
	"errors"
	"strings"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// subMemory is what a subscription is charged beyond its pattern and
// group: its state and its place in the index. tokenMemory is charged
// again for each of its pattern's tokens, each of which may be a node of
// the index of its own: measured, 10,000 patterns of 64 new tokens each
// took 8,160 bytes of heap apiece, where 256 plus their length had been
// charged.
const (
	subMemory   = 256
	tokenMemory = 128
)

func subCost(s *subscription) int64 {
	tokens := strings.Count(s.pattern, ".") + 1
	return int64(subMemory + tokens*tokenMemory + len(s.pattern) + len(s.group))
}

// subscribe adds a subscription for SUB. One connection may hold one
// subscription per pattern, group and policy: a second would only
// multiply what every matching publish costs the broker (another copy,
// another encoding), so it is refused, and clients that want several
// handlers on one pattern share the one subscription among them.
func (c *conn) subscribe(f *wire.Frame) error {
	if _, dup := c.subs[f.ID]; dup {
		return wire.Errorf(wire.CodeDuplicateSub, "subscription id %d is already in use", f.ID)
	}
	key := subKey{string(f.Topic), string(f.Reply), f.Flags}
	// Each SubRetained SUB gets its own snapshot, so it is never a
	// duplicate (retain.go); it is not listed in subKeys.
	if id, dup := c.subKeys[key]; dup && f.Flags&wire.SubRetained == 0 {
		return wire.Errorf(wire.CodeDuplicateSub, "this connection already subscribes to %q%s with the same policy, as id %d",
			key.pattern, groupText(key.group), id)
	}
	if len(c.subs) >= c.srv.cfg.MaxSubs {
		return wire.Errorf(wire.CodeTooManySubs, "this connection has %d subscriptions, the limit", len(c.subs))
	}
	// Checked before the policy looks at them: it must not decide on (nor
	// a denial quote) what is not a pattern.
	if err := topics.ValidSub(key.pattern, key.group); err != nil {
		return subError(err)
	}
	if err := checkMonitorSub(f); err != nil {
		return err
	}
	if err := checkRetainedSub(f); err != nil {
		return err
	}
	sub := c.subject.Load()
	access, err := c.decideSub(sub, key.pattern, key.group, key.flags)
	if err != nil {
		return err
	}
	s := &subscription{c: c, sid: f.ID, pattern: key.pattern, group: key.group, flags: f.Flags}
	if err := c.chargeSub(s); err != nil {
		return err
	}
	if h := c.srv.cfg.hooks; h != nil && h.subDecided != nil {
		h.subDecided()
	}
	// Listed under mu, where SetPolicy installs a connection's policy and
	// decides its subscriptions again (applyPolicy): if it installed one
	// since sub was loaded, which did not see s, s is decided again here;
	// if it installs one later, it finds s listed. And listed before it
	// enters the index, so that no message reaches s on the old decision.
	c.mu.Lock()
	if now := c.subject.Load(); now != sub {
		if access, err = c.decideSub(now, key.pattern, key.group, key.flags); err != nil {
			c.mu.Unlock()
			c.unchargeSub(s)
			return err
		}
	}
	s.access.Store(access)
	c.subs[f.ID] = s
	if f.Flags&wire.SubRetained == 0 {
		c.subKeys[key] = f.ID
	}
	c.mu.Unlock()
	if err := c.addToIndex(s); err != nil { // retain.go: a SubRetained SUB's snapshot first
		c.mu.Lock()
		delete(c.subs, f.ID)
		if f.Flags&wire.SubRetained == 0 {
			delete(c.subKeys, key)
		}
		c.mu.Unlock()
		c.unchargeSub(s)
		return subError(err)
	}
	c.srv.noteWatcher(s, 1)
	c.listenEvent(wire.SysListenUp, s)
	return nil
}

// subError is the ERR for a SUB whose pattern or group the index refuses.
func subError(err error) *wire.Error {
	code := wire.CodeInvalidPattern
	var te *topics.Error
	if errors.As(err, &te) && te.Kind == "group" {
		code = wire.CodeInvalidGroup
	}
	return &wire.Error{Code: code, Text: err.Error()}
}

func groupText(group string) string {
	if group == "" {
		return ""
	}
	return " in queue group " + group
}

// subCharge is one thing a subscription is charged to its user.
type subCharge struct {
	k kind
	n int64
}

// subCharges lists what s is charged to its connection's user: one of its
// subscriptions, its memory, and one of its $SYS. subscriptions or queue
// group subscriptions if it is one.
func subCharges(s *subscription) []subCharge {
	cs := []subCharge{{kSubs, 1}, {kInput, subCost(s)}}
	if watchesEvents(s.pattern) {
		cs = append(cs, subCharge{kWatchers, 1})
	}
	if s.group != "" {
		cs = append(cs, subCharge{kGroups, 1})
	}
	return cs
}

// chargeSub charges a subscription to the connection's user (subCharges),
// all or nothing.
func (c *conn) chargeSub(s *subscription) error {
	led := c.srv.led
	cs := subCharges(s)
	for i, ch := range cs {
		if err := led.charge(c.acct, ch.k, ch.n); err != nil {
			for _, done := range cs[:i] {
				led.uncharge(c.acct, done.k, done.n)
			}
			c.budgetHit("subscription refused over budget", err)
			return wire.Errorf(wire.CodeTooManySubs, "%v", err)
		}
	}
	return nil
}

func (c *conn) unchargeSub(s *subscription) {
	for _, ch := range subCharges(s) {
		c.srv.led.uncharge(c.acct, ch.k, ch.n)
	}
}

// unsubscribe removes a subscription for UNSUB.
func (c *conn) unsubscribe(f *wire.Frame) error {
	s, ok := c.subs[f.ID]
	if !ok {
		return wire.Errorf(wire.CodeUnknownSub, "no subscription with id %d", f.ID)
	}
	c.removeSub(s)
	return nil
}

// removeSub takes s out of the index and the connection, and gives back
// what it was charged. It is marked removed first, under the lock
// publishers check it under: one that found it in the index just before
// then gives a queue group's message to another member instead.
func (c *conn) removeSub(s *subscription) {
	c.mu.Lock()
	s.removed = true
	c.mu.Unlock()
	c.srv.indexRemove(s)
	c.srv.noteWatcher(s, -1)
	c.listenEvent(wire.SysListenDown, s)
	c.mu.Lock()
	delete(c.subs, s.sid)
	if s.flags&wire.SubRetained == 0 {
		delete(c.subKeys, subKey{s.pattern, s.group, s.flags})
	}
	c.mu.Unlock()
	c.unchargeSub(s)
}

// dropSubs removes every subscription of the connection, all marked
// removed before the first leaves the index, as in removeSub.
func (c *conn) dropSubs() {
	c.mu.Lock()
	for _, s := range c.subs {
		s.removed = true
	}
	c.mu.Unlock()
	for _, s := range c.subs {
		c.removeSub(s)
	}
}
