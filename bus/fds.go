package bus

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fdSet holds the descriptors that came with one PUB. Each pending copy of
// the message holds a reference, and the router one while it routes; the
// last release closes the descriptors.
type fdSet struct {
	fds  []int
	refs atomic.Int32
}

func newFDSet(fds []int) *fdSet {
	s := &fdSet{fds: fds}
	s.refs.Store(1)
	return s
}

func (s *fdSet) ref() { s.refs.Add(1) }

// Release drops one reference, closing the descriptors with the last.
func (s *fdSet) Release() {
	if s.refs.Add(-1) == 0 {
		for _, fd := range s.fds {
			unix.Close(fd)
		}
	}
}
