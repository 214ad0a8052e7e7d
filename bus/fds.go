package bus

import (
	"sync/atomic"

	"github.com/busd/busd/bus/wire"
)

// fdSet holds the descriptors that came with one PUB. Each queued copy of
// the message holds a reference, and the router one while it routes; the
// last release hands the descriptors to the closer, which gives their
// place in the broker's descriptor pool back to owner (the sender) once
// they are closed.
//
// For a payload in a memfd (payload.go) nobody is charged for the set
// itself: owner (the publisher) is charged size while the broker holds
// the set to route it (holds: the router's reference, and one for a
// request held for an activation), and each receiver's queued copy is
// charged to that receiver's user (payloadCopy). A monitor's copy carries
// a set of its own: a duplicate of the payload's descriptor, owned by and
// charged to the monitor's user until it is closed (payload, given back
// by the closer: monitorPayload, monitor.go).
type fdSet struct {
	fds     []int
	refs    atomic.Int32
	owner   *account
	srv     *Server
	payload int64 // bytes of owner's UserBudget.FDPayload it holds until closed; 0 for none
	// size is that of the payload in a memfd the set carries, which each
	// receiver's copy is charged (payloadCopy); 0 for none, or for a set
	// whose charge is payload's.
	size int64
	// holds counts the broker's own holds on the set for routing; owner is
	// charged size until the last is dropped (unhold).
	holds atomic.Int32
	// passed says the publisher's charge went to a copy queued for one of
	// its own user's connections (payloadCopy), which gives it back:
	// charging the user again for the copy would have taken twice the
	// payload's size from it, so that a payload of more than half its
	// budget never reached a receiver of its own uid.
	passed atomic.Bool
}

func newFDSet(srv *Server, owner *account, fds []int) *fdSet {
	s := &fdSet{fds: fds, owner: owner, srv: srv}
	s.refs.Store(1)
	return s
}

func (s *fdSet) ref() { s.refs.Add(1) }

// Release drops one reference; the last one closes the descriptors, off
// the caller's path.
func (s *fdSet) Release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.srv.closer.closePayload(s.fds, s.owner, s.payload)
}

// hold adds a routing hold: a request held for an activation.
func (s *fdSet) hold() {
	if s.size != 0 {
		s.holds.Add(1)
	}
}

// unhold drops a routing hold; the last gives the publisher's charge for
// its payload back. The set's reference is dropped apart (Release).
func (s *fdSet) unhold() {
	if s.size != 0 && s.holds.Add(-1) == 0 && !s.passed.Load() {
		s.srv.led.uncharge(s.owner, kFDPayload, s.size)
	}
}

// payloadCopy is one receiver's queued copy of a message whose payload is
// in a memfd: a reference to its fdSet, and the payload's size charged to
// the receiver's user (acct), both released at once, by the outbox, when
// the copy is written or dropped, whichever way it is dropped.
type payloadCopy struct {
	set  *fdSet
	acct *account
}

// chargeCopy charges a, the user of a receiver, for a copy of s's
// payload, and reports whether it could: the first copy for the
// publisher's own user takes the publisher's charge over (passed) rather
// than charge it again. A caller holds one of s's routing holds, so the
// publisher's charge is still there to take. Never waits.
func (s *fdSet) chargeCopy(a *account) bool {
	if a == s.owner && s.passed.CompareAndSwap(false, true) {
		return true
	}
	return s.srv.led.try(a, kFDPayload, s.size) == granted
}

// Release gives the receiver's charge back and drops the reference.
func (p *payloadCopy) Release() {
	p.set.srv.led.uncharge(p.acct, kFDPayload, p.set.size)
	p.set.Release()
}

// largeBody holds the pieces of a large PUB, which every receiver's queue
// refers to instead of copying them. Each queue holds a reference, and the
// router one while it routes; the last release gives the pieces back for
// reuse, and tells the ledger that their memory is free (noteFreed): each
// queue's charge for them ends when that queue goes, the memory itself
// only with the last.
type largeBody struct {
	pieces [][]byte
	size   int64
	refs   atomic.Int32
	led    *ledger
}

func newLargeBody(led *ledger, pieces [][]byte) *largeBody {
	b := &largeBody{pieces: pieces, led: led}
	for _, p := range pieces {
		b.size += int64(cap(p))
	}
	b.refs.Store(1)
	led.mu.Lock()
	led.large += b.size
	led.mu.Unlock()
	return b
}

func (b *largeBody) ref() { b.refs.Add(1) }

// Release drops one reference.
func (b *largeBody) Release() {
	if b.refs.Add(-1) == 0 {
		wire.PutPieces(b.pieces)
		b.pieces = nil // whoever still refers to b does not keep them
		b.led.noteFreed(b.size)
	}
}
