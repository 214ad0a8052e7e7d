package wire

import "github.com/busd/busd/unixsock"

// Outbox is output waiting for a connection's writer: encoded frames back to
// back, and the descriptors of the frames that carry some, in order. One
// goroutine fills it under the owner's lock; the writer swaps it for an empty
// one and writes it without the lock.
type Outbox struct {
	Buf   []byte
	marks []fdMark
}

// Releaser is told when the descriptors it was added with have been sent or
// dropped, so that it can close them.
type Releaser interface{ Release() }

type fdMark struct {
	off int // where the frame starts in Buf
	fds []int
	rel Releaser
}

// AddFDs records that the frame about to be appended to Buf carries fds; rel
// (which may be nil) is released once they are sent or dropped.
func (o *Outbox) AddFDs(fds []int, rel Releaser) {
	o.marks = append(o.marks, fdMark{len(o.Buf), fds, rel})
}

// TakeInto swaps o's frames into batch, which must be empty, for a Sender's
// take function; the caller holds the lock that guards o. It takes nothing
// if o is empty (empty is then true), or if o carries descriptors and
// descOK is false.
func (o *Outbox) TakeInto(batch *Outbox, descOK bool) (took, empty bool) {
	switch {
	case len(o.Buf) == 0:
		return false, true
	case !descOK && o.HasFDs():
		return false, false
	}
	*o, *batch = *batch, *o
	return true, false
}

// HasFDs reports whether any frame in the Outbox carries descriptors.
func (o *Outbox) HasFDs() bool { return len(o.marks) > 0 }

// FDs returns how many descriptors the Outbox's frames carry.
func (o *Outbox) FDs() int {
	n := 0
	for _, m := range o.marks {
		n += len(m.fds)
	}
	return n
}

// Reset empties the Outbox, releasing the descriptors of its frames. It
// keeps the buffer for reuse if its capacity is at most keep, so a steady
// stream reuses one buffer while a rare burst gives its memory back.
func (o *Outbox) Reset(keep int) {
	for _, m := range o.marks {
		if m.rel != nil {
			m.rel.Release()
		}
	}
	clear(o.marks)
	o.marks = o.marks[:0]
	if cap(o.Buf) > keep {
		o.Buf = nil
	} else {
		o.Buf = o.Buf[:0]
	}
}

// WriteTo writes the Outbox in as few sendmsg calls as the descriptors
// allow: a call carries the fds of every frame in it, at most the kernel's
// MaxFDsPerMessage, attached to its first byte, which is at or before each
// of those frames' first bytes, as the protocol requires. scratch is reused
// for the descriptor list and returned.
func (o *Outbox) WriteTo(s *unixsock.Conn, scratch []int) ([]int, error) {
	start, marks := 0, o.marks
	for start < len(o.Buf) {
		scratch = scratch[:0]
		end := len(o.Buf)
		for i, m := range marks {
			if len(scratch)+len(m.fds) > unixsock.MaxFDsPerMessage {
				end, marks = m.off, marks[i:]
				break
			}
			scratch = append(scratch, m.fds...)
			if i == len(marks)-1 {
				marks = nil
			}
		}
		if _, err := s.WriteWithFDs(o.Buf[start:end], scratch); err != nil {
			return scratch, err
		}
		start = end
	}
	return scratch, nil
}
