package clientlib

import (
	"errors"
	"os"
	"slices"

	"github.com/busd/busd/bus/wire"
)

// Subscriptions of one connection with the same pattern, queue group and
// slow-consumer policy share one subscription at the broker. The broker
// refuses a second one (it would only multiply what every matching publish
// costs it), and the connection needs only one: the first Subscription
// sends SUB, later ones join it, and the last to leave sends UNSUB. The
// reader gives each message of a plain subscription to every member, and
// each message of a queue group's to one member, so that the group's
// semantics (each message handled once) hold across the whole bus.

// subKey is what the broker tells subscriptions of one connection apart by.
type subKey struct {
	pattern, group string
	flags          uint8
	// unique tells apart subscriptions with wire.SubRetained, which share
	// no broker subscription: each gets its own snapshot (retain.go).
	unique uint64
}

// brokerSub is one subscription at the broker and the Subscriptions that
// share it.
type brokerSub struct {
	key subKey
	sid uint32
	seq uint64 // the frame number of its SUB, to match an ERR to it

	// Under Conn.subsMu. members is replaced, never changed in place, and
	// subsGen bumped with it, so the reader may keep the slice it last read
	// for as long as subsGen is unchanged (see lookupSub).
	members []*Subscription
	active  int // members that have not begun to leave

	next int // reader-owned: the member the group's next message goes to
}

// attach makes s a member of the broker subscription for key, sending SUB
// if there is none yet. Under c.mu the SUB is only queued, not sent, so no
// MSG for it can arrive before it is in subs. While the connection is
// reconnecting nothing is queued: the reconnect sends a SUB for every
// broker subscription (see install).
func (c *Conn) attach(s *Subscription, key subKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	bs := c.byKey[key]
	if bs == nil {
		c.nextSID++
		bs = &brokerSub{key: key, sid: c.nextSID}
		if c.status == Connected {
			c.queueLocked(wire.AppendSub(nil, bs.sid, key.pattern, key.group, key.flags))
			bs.seq = c.seq
		}
		c.byKey[key] = bs
		c.subs[bs.sid] = bs
	}
	bs.members = append(slices.Clip(bs.members), s)
	bs.active++
	s.bs = bs
	c.subsGen.Add(1)
	return nil
}

// leaveBroker records that s has begun to leave. If it was the last
// member that had not, the broker subscription leaves too: UNSUB is
// queued, and a new Subscription with the same key gets a broker
// subscription of its own (its SUB follows the UNSUB, so the broker never
// sees two). Members still attached keep receiving until they detach:
// what the broker sent before it handled the UNSUB goes to them.
func (c *Conn) leaveBroker(s *Subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subsMu.Lock()
	bs := s.bs
	bs.active--
	// Not if the broker refused the SUB meanwhile: it has nothing to end.
	last := bs.active == 0 && c.subs[bs.sid] == bs
	if last && c.byKey[bs.key] == bs {
		delete(c.byKey, bs.key)
	}
	c.subsMu.Unlock()
	if last && c.err == nil && c.status == Connected { // a reconnect leaves it out instead
		c.queueLocked(wire.AppendControl(nil, wire.OpUnsub, bs.sid, nil))
	}
	return c.err
}

// detach stops the reader handing s messages. It may be called more than
// once.
func (c *Conn) detach(s *Subscription) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	bs := s.bs
	i := slices.Index(bs.members, s)
	if i < 0 {
		return
	}
	bs.members = slices.Delete(slices.Clone(bs.members), i, i+1)
	if len(bs.members) == 0 && c.subs[bs.sid] == bs {
		delete(c.subs, bs.sid)
	}
	c.subsGen.Add(1)
}

// refused ends the members of the broker subscription whose SUB a
// non-fatal ERR refuses, and reports the error to each; err concerns no
// subscription if it is about another frame, or about a SUB whose members
// have all left.
func (c *Conn) refused(err error) {
	c.mu.Lock()
	c.lastRefusal = err
	c.mu.Unlock()
	var se *ServerError
	var members []*Subscription
	if errors.As(err, &se) && se.Op == wire.OpPub && c.inbox.refuseSeq(se.Seq, err) {
		return // the request it was fails with it
	}
	if errors.As(err, &se) && se.Op == wire.OpSub {
		c.subsMu.Lock()
		for _, bs := range c.subs {
			if bs.seq == se.Seq {
				members, bs.members = bs.members, nil
				delete(c.subs, bs.sid)
				if c.byKey[bs.key] == bs {
					delete(c.byKey, bs.key)
				}
				c.subsGen.Add(1)
				break
			}
		}
		c.subsMu.Unlock()
	}
	if len(members) == 0 {
		c.cb.push(nil, err)
		return
	}
	for _, s := range members {
		s.end(err)
		if s.inbox != nil {
			s.inbox.refuse(err)
		}
		c.cb.push(s, err)
	}
}

// takeAllSubs empties the connection's subscriptions, when it ends, and
// returns every member.
func (c *Conn) takeAllSubs() []*Subscription {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	var all []*Subscription
	for _, bs := range c.subs {
		all = append(all, bs.members...)
		bs.members = nil
	}
	c.subs = map[uint32]*brokerSub{}
	c.byKey = map[subKey]*brokerSub{}
	c.subsGen.Add(1)
	return all
}

// lookupSub finds the broker subscription of a MSG and its members.
// Consecutive messages usually belong to the same one, so the reader
// remembers the last and checks only that the set of subscriptions has not
// changed since, instead of taking the map's lock for every message.
func (c *Conn) lookupSub(sid uint32) (*brokerSub, []*Subscription) {
	gen := c.subsGen.Load()
	if sid == c.lastSID && gen == c.lastGen && c.lastSub != nil {
		return c.lastSub, c.lastMembers
	}
	c.subsMu.RLock()
	bs := c.subs[sid]
	var members []*Subscription
	if bs != nil {
		members = bs.members
	}
	c.subsMu.RUnlock()
	c.lastSID, c.lastGen, c.lastSub, c.lastMembers = sid, gen, bs, members
	return bs, members
}

// pick chooses the member a queue group's message goes to: the next in
// turn that is not leaving. If all are leaving, the last one's UNSUB is on
// its way and the message was sent before the broker handled it: a
// draining member must still take it, or the group would lose it.
func (bs *brokerSub) pick(members []*Subscription) *Subscription {
	n := len(members)
	if n == 1 {
		return members[0]
	}
	for range n {
		bs.next++
		if s := members[bs.next%n]; !s.closing.Load() {
			return s
		}
	}
	for _, s := range members {
		if !s.q.ended() {
			return s
		}
	}
	return members[0]
}

// deliverEach gives a plain subscription's message to each of its members.
// Every receiver owns its descriptors, so all but the first get duplicates,
// made before any receiver has the message (a reply is handed over at
// once). A member whose duplicates cannot be made loses the message, and
// is told so.
func (c *Conn) deliverEach(members []*Subscription, f *wire.Frame, files []*os.File, pl *fdPayload) {
	var dups [][]*os.File
	var dupErr error
	if len(files) > 0 {
		dups = make([][]*os.File, len(members))
		dups[0] = files
		for i := 1; i < len(members) && dupErr == nil; i++ {
			dups[i], dupErr = dupReceived(files)
		}
	}
	last := len(members) - 1
	for i, s := range members {
		var fl []*os.File
		if dups != nil {
			if fl = dups[i]; fl == nil {
				c.lostOne(s, "its own duplicates of the message's files could not be made: "+dupErr.Error())
				continue
			}
		}
		// Only one receiver may own the frame's buffer.
		c.deliverTo(s, f, fl, pl, i == last)
	}
}

// dupReceived duplicates received files for another receiver.
func dupReceived(files []*os.File) ([]*os.File, error) {
	out := make([]*os.File, 0, len(files))
	for _, f := range files {
		fd, err := dupFile(f)
		if err != nil {
			for _, d := range out {
				d.Close()
			}
			return nil, err
		}
		out = append(out, os.NewFile(uintptr(fd), f.Name()))
	}
	return out, nil
}
