package bus

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
)

// Well-known names (docs/PROTOCOL.md section 3.4). A connection asks for a
// name with "$SYS.req.name.request"; one connection owns a name at a
// time, and others may wait in its queue. Every change of owner happens
// under the registry's lock, in one step: the owner that goes (released,
// replaced, closed) is followed by the head of the queue before the lock
// is let go, and the change's event ("$SYS.name.owner.<name>") is
// published under it too, so events about one name come in the order of
// their sequence numbers.
//
// What a connection holds here (a claim: owning or queued) is bounded per
// connection (Config.MaxNames), per name (Config.MaxNameQueue) and per uid
// (UserBudget.Names), and each claim is charged to the uid's input bytes
// (nameClaimMemory plus the name) until it ends. A connection's claims end
// when it closes (finish calls dropNames).

// nameClaimMemory is what a claim is charged beyond its name: the claim,
// its place in the queue and in the maps.
const nameClaimMemory = 256

// Defaults of the bounds that Config leaves 0.
const (
	defaultMaxNames          = 64
	defaultMaxNameQueue      = 64
	defaultUserNames         = 1024
	defaultActivationTimeout = 25 * time.Second
)

func orDefault[T ~int | ~int64](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// nameRegistry holds the names that have an owner, a queue or held
// requests. Its lock comes after Server.mu and before any conn.mu (see
// doc.go); the Activator is never called under it.
type nameRegistry struct {
	mu     sync.Mutex
	names  map[string]*nameEntry
	byConn map[*conn]map[string]struct{} // the names each connection claims
	byUID  map[uint32]int                // claims per uid
	seq    uint64                        // the last owner change's number, of all names
	held   int                           // requests held for activation, of all names
	heldBy map[*conn]int                 // requests held, per requester
	// heldByUID counts the requests held per requester's uid, startedBy
	// the pending activations per uid whose request started them.
	heldByUID map[uint32]int
	startedBy map[uint32]int
}

// nameEntry is one name.
type nameEntry struct {
	name  string
	owner *nameClaim
	queue []*nameClaim // next owner first
	seq   uint64       // its last owner change's number
	act   *activation  // its pending activation; nil if none
}

// nameClaim is one connection's claim on a name: its owner's, or a place
// in its queue.
type nameClaim struct {
	c     *conn
	flags uint8
	id    wire.NameIdentity
}

func (e *nameEntry) idle() bool { return e.owner == nil && len(e.queue) == 0 && e.act == nil }

func (e *nameEntry) queued(c *conn) int {
	return slices.IndexFunc(e.queue, func(k *nameClaim) bool { return k.c == c })
}

// nameIdentity returns c's identity as name answers and events give it.
func (c *conn) nameIdentity() wire.NameIdentity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wire.NameIdentity{ConnID: c.id, PID: c.origin.PID, UID: c.origin.UID, GID: c.origin.GID, Name: c.name}
}

func (k *nameClaim) identity() *wire.NameIdentity {
	if k == nil {
		return nil
	}
	id := k.id
	return &id
}

// entryLocked returns the entry of name, made if need be.
func (r *nameRegistry) entryLocked(name string) *nameEntry {
	if r.names == nil {
		r.names = map[string]*nameEntry{}
		r.byConn = map[*conn]map[string]struct{}{}
		r.byUID = map[uint32]int{}
		r.heldBy = map[*conn]int{}
		r.heldByUID = map[uint32]int{}
		r.startedBy = map[uint32]int{}
	}
	e := r.names[name]
	if e == nil {
		name = strings.Clone(name) // it may be a view of a read buffer
		e = &nameEntry{name: name}
		r.names[name] = e
	}
	return e
}

// forgetIdleLocked forgets e if nothing is left of it.
func (r *nameRegistry) forgetIdleLocked(e *nameEntry) {
	if e.idle() && r.names[e.name] == e {
		delete(r.names, e.name)
	}
}

// claimLocked makes c a claim on e within the bounds, charged, or says
// which bound refuses it. queueing says the claim is a place in the queue.
func (s *Server) claimLocked(c *conn, e *nameEntry, flags uint8, queueing bool) (*nameClaim, error) {
	r := &s.names
	switch {
	case len(r.byConn[c]) >= orDefault(s.cfg.MaxNames, defaultMaxNames):
		return nil, fmt.Errorf("this connection owns or queues for %d names, the limit", len(r.byConn[c]))
	case r.byUID[c.origin.UID] >= orDefault(s.cfg.User.Names, defaultUserNames):
		return nil, fmt.Errorf("uid %d's connections own or queue for %d names, the limit", c.origin.UID, r.byUID[c.origin.UID])
	case queueing && len(e.queue) >= orDefault(s.cfg.MaxNameQueue, defaultMaxNameQueue):
		return nil, fmt.Errorf("%d connections queue for %q, the limit", len(e.queue), e.name)
	}
	if err := s.led.charge(c.acct, kInput, nameClaimMemory+int64(len(e.name))); err != nil {
		c.budgetHit("name refused over budget", err)
		return nil, err
	}
	if r.byConn[c] == nil {
		r.byConn[c] = map[string]struct{}{}
	}
	r.byConn[c][e.name] = struct{}{}
	r.byUID[c.origin.UID]++
	return &nameClaim{c: c, flags: flags, id: c.nameIdentity()}, nil
}

// unclaimLocked ends k's claim on e (which no longer lists it) and gives
// back its charge.
func (s *Server) unclaimLocked(k *nameClaim, e *nameEntry) {
	r := &s.names
	delete(r.byConn[k.c], e.name)
	if len(r.byConn[k.c]) == 0 {
		delete(r.byConn, k.c)
	}
	if r.byUID[k.c.origin.UID]--; r.byUID[k.c.origin.UID] <= 0 {
		delete(r.byUID, k.c.origin.UID)
	}
	s.led.uncharge(k.c.acct, kInput, nameClaimMemory+int64(len(e.name)))
}

// setOwnerLocked makes k (nil: nobody) the owner of e, publishes the
// change, delivers the requests held for e's activation to its new owner
// and returns whether the Activator must be told (nameOwned): whenever
// the name gets an owner, as its service may take it after the broker
// stopped waiting for it (the activation timed out), and the Activator
// still counts that start as pending.
func (s *Server) setOwnerLocked(e *nameEntry, k *nameClaim) (activated bool) {
	old := e.owner
	e.owner = k
	s.names.seq++
	e.seq = s.names.seq
	s.nameEvent(e, old, k)
	if k != nil && e.act != nil {
		s.releaseHeldLocked(e, k.c)
	}
	return k != nil
}

// promoteLocked hands e, whose owner has gone (its claim already ended),
// to the next in its queue that is still open, in the same step; nobody
// if none is. It returns setOwnerLocked's answer.
func (s *Server) promoteLocked(e *nameEntry) bool {
	for len(e.queue) > 0 {
		k := e.queue[0]
		e.queue = slices.Delete(e.queue, 0, 1)
		if !k.c.isClosing() {
			return s.setOwnerLocked(e, k)
		}
		s.unclaimLocked(k, e) // closing: its dropNames will find nothing
	}
	return s.setOwnerLocked(e, nil)
}

// nameEvent publishes e's change of owner from old to k.
func (s *Server) nameEvent(e *nameEntry, old, k *nameClaim) {
	if s.watchers.Load() == 0 {
		return
	}
	topic := append([]byte(wire.SysNameOwner), e.name...)
	s.emit(topic, &wire.NameEvent{Name: e.name, Old: old.identity(), New: k.identity(), Seq: e.seq})
}

// nameOwned tells the Activator that name has an owner, outside the
// registry's lock.
func (s *Server) nameOwned(name string, activated bool) {
	if activated && s.cfg.Activator != nil {
		s.cfg.Activator.Owned(name)
	}
}

// answerNameRequest answers "$SYS.req.name.request".
func (c *conn) answerNameRequest(payload []byte) sysAnswer {
	req, err := wire.DecodeNameRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	if sub := c.subject.Load(); !sub.Everything(policy.Own) {
		if d := sub.Decide(policy.Own, req.Name); !d.Allow {
			return sysAnswer{status: wire.StatusForbidden, reason: c.deny("owning name", req.Name, d).Text}
		}
	}
	s := c.srv
	r := &s.names
	r.mu.Lock()
	e := r.entryLocked(req.Name)
	result, activated, err := s.requestLocked(c, e, req.Flags)
	reply := wire.NameReply{Result: result, Owner: e.owner.identity(), Seq: e.seq}
	r.forgetIdleLocked(e)
	r.mu.Unlock()
	s.nameOwned(req.Name, activated)
	if err != nil {
		return sysAnswer{status: wire.StatusNoRoom, reason: err.Error()}
	}
	body, _ := wire.AppendBody(nil, &reply) // numbers and strings: it cannot fail
	return sysAnswer{payload: body}
}

// requestLocked does what a request for e with flags asks, D-Bus's way.
func (s *Server) requestLocked(c *conn, e *nameEntry, flags uint8) (result string, activated bool, err error) {
	i := e.queued(c)
	switch {
	case e.owner != nil && e.owner.c == c:
		e.owner.flags = flags
		return wire.NameAlreadyOwner, false, nil
	case e.owner == nil:
		// Nobody owns it, so nobody queues (a queue is promoted at once).
		k, err := s.claimLocked(c, e, flags, false)
		if err != nil {
			return "", false, err
		}
		return wire.NamePrimaryOwner, s.setOwnerLocked(e, k), nil
	case flags&wire.NameReplaceExisting != 0 && e.owner.flags&wire.NameAllowReplacement != 0:
		var k *nameClaim
		if i >= 0 {
			k = e.queue[i]
			k.flags = flags
			e.queue = slices.Delete(e.queue, i, i+1)
		} else if k, err = s.claimLocked(c, e, flags, false); err != nil {
			return "", false, err
		}
		old := e.owner
		// The replaced owner goes to the head of the queue, unless it
		// asked not to queue or the queue is full: then it loses the name.
		if old.flags&wire.NameDoNotQueue == 0 && len(e.queue) < orDefault(s.cfg.MaxNameQueue, defaultMaxNameQueue) {
			e.queue = slices.Insert(e.queue, 0, old)
		} else {
			s.unclaimLocked(old, e)
		}
		return wire.NamePrimaryOwner, s.setOwnerLocked(e, k), nil
	case flags&wire.NameDoNotQueue != 0:
		if i >= 0 {
			k := e.queue[i]
			e.queue = slices.Delete(e.queue, i, i+1)
			s.unclaimLocked(k, e)
		}
		return wire.NameExists, false, nil
	case i >= 0:
		e.queue[i].flags = flags
		return wire.NameInQueue, false, nil
	}
	k, err := s.claimLocked(c, e, flags, true)
	if err != nil {
		return "", false, err
	}
	e.queue = append(e.queue, k)
	return wire.NameInQueue, false, nil
}

// answerNameRelease answers "$SYS.req.name.release".
func (c *conn) answerNameRelease(payload []byte) sysAnswer {
	req, err := wire.DecodeNameRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	s := c.srv
	r := &s.names
	r.mu.Lock()
	reply := wire.NameReply{Result: wire.NameNonExistent, Seq: r.seq}
	activated := false
	if e := r.names[req.Name]; e != nil && (e.owner != nil || len(e.queue) > 0) {
		switch i := e.queued(c); {
		case e.owner != nil && e.owner.c == c:
			s.unclaimLocked(e.owner, e)
			activated = s.promoteLocked(e)
			reply.Result = wire.NameReleased
		case i >= 0:
			s.unclaimLocked(e.queue[i], e)
			e.queue = slices.Delete(e.queue, i, i+1)
			reply.Result = wire.NameReleased
		default:
			reply.Result = wire.NameNotOwner
		}
		reply.Owner, reply.Seq = e.owner.identity(), e.seq
		r.forgetIdleLocked(e)
	}
	r.mu.Unlock()
	s.nameOwned(req.Name, activated)
	body, _ := wire.AppendBody(nil, &reply) // numbers and strings: it cannot fail
	return sysAnswer{payload: body}
}

// dropNames ends every claim of c, which is closing: each name it owned
// goes to the next in its queue in the same step, and its requests held
// for activation are dropped.
func (c *conn) dropNames() {
	s := c.srv
	r := &s.names
	r.mu.Lock()
	var owned []string
	for name := range r.byConn[c] {
		e := r.names[name]
		switch i := e.queued(c); {
		case e.owner != nil && e.owner.c == c:
			s.unclaimLocked(e.owner, e)
			if s.promoteLocked(e) {
				owned = append(owned, name)
			}
		case i >= 0:
			s.unclaimLocked(e.queue[i], e)
			e.queue = slices.Delete(e.queue, i, i+1)
		}
		r.forgetIdleLocked(e)
	}
	if r.heldBy[c] > 0 {
		s.dropHeldLocked(c)
	}
	r.mu.Unlock()
	for _, name := range owned {
		s.nameOwned(name, true)
	}
}

// ownerLocked returns e's answer to "$SYS.req.name.owner".
func (e *nameEntry) ownerLocked() wire.NameOwner {
	o := wire.NameOwner{Name: e.name, Owner: e.owner.identity(), Queue: make([]wire.NameIdentity, len(e.queue)), Seq: e.seq}
	for i, k := range e.queue {
		o.Queue[i] = k.id
	}
	return o
}

// answerNameOwner answers "$SYS.req.name.owner".
func (c *conn) answerNameOwner(payload []byte) sysAnswer {
	req, err := wire.DecodeNameRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	r := &c.srv.names
	r.mu.Lock()
	o := wire.NameOwner{Name: req.Name, Queue: []wire.NameIdentity{}, Seq: r.seq}
	if e := r.names[req.Name]; e != nil {
		o = e.ownerLocked()
		o.Seq = max(o.Seq, r.seq) // no event of it comes between
	}
	r.mu.Unlock()
	body, _ := wire.AppendBody(nil, &o) // numbers and strings: it cannot fail
	return sysAnswer{payload: body}
}

// answerNames answers "$SYS.req.names": the names with an owner or a
// queue, sorted, at most the request's limit of them.
func (c *conn) answerNames(payload []byte) sysAnswer {
	req, err := wire.DecodeListRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	list := wire.NameList{Names: []wire.NameOwner{}}
	r := &c.srv.names
	r.mu.Lock()
	names := make([]string, 0, len(r.names))
	for name, e := range r.names {
		if e.owner != nil || len(e.queue) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	list.Total = uint64(len(names))
	if list.Total > req.Limit {
		names, list.Truncated = names[:req.Limit], true
	}
	for _, name := range names {
		list.Names = append(list.Names, r.names[name].ownerLocked())
	}
	r.mu.Unlock()
	return sysAnswer{payload: fitEntries(c, list, list.Names, list.Truncated, func(l *wire.NameList, e []wire.NameOwner, cut bool) { l.Names, l.Truncated = e, cut })}
}
