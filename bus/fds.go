package bus

import (
	"sync/atomic"

	"github.com/busd/busd/bus/wire"
)

// fdSet holds the descriptors that came with one PUB. Each queued copy of
// the message holds a reference, and the router one while it routes; the
// last release hands the descriptors to the closer, which gives their
// place in the broker's descriptor pool back to owner (the sender) once
// they are closed, and with it the payload bytes charged to owner for a
// payload in a memfd (payload.go).
//
// A monitor's copy of a message whose payload is in a memfd carries that
// one descriptor: a view of the set (payloadView), whose release is one
// of its parent's.
type fdSet struct {
	fds     []int
	refs    atomic.Int32
	owner   *account
	srv     *Server
	payload int64  // bytes of owner's UserBudget.FDPayload it holds; 0 for none
	parent  *fdSet // for a view: the set whose descriptors it shows
}

func newFDSet(srv *Server, owner *account, fds []int) *fdSet {
	s := &fdSet{fds: fds, owner: owner, srv: srv}
	s.refs.Store(1)
	return s
}

func (s *fdSet) ref() { s.refs.Add(1) }

// Release drops one reference; the last one closes the descriptors, off
// the caller's path (a view's gives its reference to the parent back).
func (s *fdSet) Release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	if s.parent != nil {
		s.parent.Release()
		return
	}
	s.srv.closer.closePayload(s.fds, s.owner, s.payload)
}

// payloadView returns a set of s's first descriptor only, the payload of
// a message whose payload is in a memfd, holding a reference to s until
// it is released.
func (s *fdSet) payloadView() *fdSet {
	s.ref()
	v := &fdSet{fds: s.fds[:1:1], parent: s}
	v.refs.Store(1)
	return v
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
