package bus

import (
	"bytes"
	"hash/maphash"
	"unsafe"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
)

// A reply permit lets a connection publish once to a reply topic in
// another connection's inbox: it is given when a request with that reply
// topic is delivered to the connection, and used by its first reply (the
// "allow responses" of NATS). So only a connection a request reached can
// answer it, once: nobody can forge a reply to a request it never got, or
// send a connection messages it did not ask for.
//
// Permits are kept by a hash of the reply topic (the server's seed, so a
// client cannot make topics collide), with the policy's word on replying
// to the request's topic, so a refused reply can name the rule. A
// connection holds at most MaxReplyPermits; past that, the oldest is
// forgotten (that request can no longer be answered), and so is any the
// connection's user has no memory budget left for. One requesting
// connection holds at most a quarter of them: past that its own new
// requests get none, so a burst of requests from one connection cannot
// make the receiver forget everyone else's. They are charged to the
// receiver's user in blocks of permitBlock.
const (
	permitMemory = 80 // a map entry, its place in the order, its requester's count
	permitBlock  = 256
)

var dialPrefix = []byte(wire.GroupOnlyPrefix)

type replyPermits struct {
	byHash  map[uint64]permit // by the reply topic's hash
	order   []uint64          // oldest first; may hold hashes used since
	perFrom map[uint64]int    // permits held per requesting connection id
	charged int               // blocks charged to the connection's user
}

type permit struct {
	deniedBy *policy.Rule // nil: the reply is allowed
	from     uint64       // the requesting connection
}

// perRequesterPermits is the most permits one requesting connection may
// have at one receiver.
func (c *conn) perRequesterPermits() int { return max(c.srv.cfg.MaxReplyPermits/4, 1) }

// grantPermitLocked records that a request from connection from, on
// topic with reply topic reply, was queued for c. Called under c.mu by the
// request's router.
func (c *conn) grantPermitLocked(from uint64, topic, reply []byte) {
	p := &c.permits
	if p.byHash == nil {
		p.byHash, p.perFrom = map[uint64]permit{}, map[uint64]int{}
	}
	h := maphash.Bytes(c.srv.permitSeed, reply)
	if _, ok := p.byHash[h]; ok {
		return // a second copy of one request (two matching subscriptions): still one answer
	}
	if p.perFrom[from] >= c.perRequesterPermits() {
		c.srv.stats.permitsForgotten.Add(1) // the requester's own flood: its request goes unanswerable
		return
	}
	for len(p.byHash) >= c.srv.cfg.MaxReplyPermits || !c.chargePermitLocked(len(p.byHash)+1) {
		if !c.forgetOldestPermitLocked() {
			return
		}
	}
	// A dial reached c as a listener the policy let listen on its name:
	// accepting it or refusing it is part of listening, not a reply to
	// decide again.
	var deniedBy *policy.Rule
	if sub := c.subject.Load(); !sub.Everything(policy.Reply) && !bytes.HasPrefix(topic, dialPrefix) {
		if d := sub.Decide(policy.Reply, unsafe.String(unsafe.SliceData(topic), len(topic))); !d.Allow {
			deniedBy = d.Rule
		}
	}
	p.byHash[h] = permit{deniedBy, from}
	p.perFrom[from]++
	p.order = append(p.order, h)
}

// remove drops the permit pm, stored under h.
func (p *replyPermits) remove(h uint64, pm permit) {
	delete(p.byHash, h)
	if p.perFrom[pm.from]--; p.perFrom[pm.from] <= 0 {
		delete(p.perFrom, pm.from)
	}
}

// chargePermitLocked makes sure n permits are paid for.
func (c *conn) chargePermitLocked(n int) bool {
	p := &c.permits
	need := (n + permitBlock - 1) / permitBlock
	if need <= p.charged {
		return true
	}
	if c.srv.led.charge(c.acct, kInput, permitBlock*permitMemory) != nil {
		return false
	}
	p.charged++
	return true
}

// forgetOldestPermitLocked drops the oldest permit still held; false if
// there is none.
func (c *conn) forgetOldestPermitLocked() bool {
	p := &c.permits
	for len(p.order) > 0 {
		h := p.order[0]
		p.order = p.order[1:]
		if pm, ok := p.byHash[h]; ok {
			p.remove(h, pm)
			c.srv.stats.permitsForgotten.Add(1)
			return true
		}
	}
	return false
}

// usePermit takes the permit for a reply to topic, or says why there is
// none.
func (c *conn) usePermit(topic string) error {
	h := maphash.String(c.srv.permitSeed, topic)
	c.mu.Lock()
	p := &c.permits
	pm, ok := p.byHash[h]
	if ok {
		p.remove(h, pm)
		c.releasePermitsLocked()
	}
	c.mu.Unlock()
	switch {
	case !ok:
		return wire.Errorf(wire.CodePermissionDenied,
			"publish to %q refused: it is in another connection's inbox, and no request with this reply topic was delivered to this connection, or it was answered already (one reply each), or forgotten (past %d outstanding requests, the oldest are; past %d from one connection, its newest get none)",
			topic, c.srv.cfg.MaxReplyPermits, c.perRequesterPermits())
	case pm.deniedBy != nil:
		return c.deny("reply to", topic, policy.Decision{Rule: pm.deniedBy})
	}
	return nil
}

// releasePermitsLocked gives back the blocks no longer needed, and trims
// the order of hashes used since, so neither grows with the permits used.
func (c *conn) releasePermitsLocked() {
	p := &c.permits
	n := len(p.byHash)
	for p.charged > 0 && (p.charged-1)*permitBlock >= n+permitBlock/2 {
		c.srv.led.uncharge(c.acct, kInput, permitBlock*permitMemory)
		p.charged--
	}
	if len(p.order) > 2*n+permitBlock {
		kept := p.order[:0]
		for _, h := range p.order {
			if _, ok := p.byHash[h]; ok {
				kept = append(kept, h)
			}
		}
		clear(p.order[len(kept):])
		p.order = kept
	}
}

// dropPermitsLocked forgets every permit and gives their charge back, when
// the connection closes.
func (c *conn) dropPermitsLocked() {
	p := &c.permits
	c.srv.led.uncharge(c.acct, kInput, int64(p.charged)*permitBlock*permitMemory)
	*p = replyPermits{}
}
