package wire

import (
	"sync"

	"github.com/busd/busd/unixsock"
)

// BatchMax is about how many bytes a Sender takes from its owner's Outbox
// at a time. Bounded so that what a discard (an ERR before a close) has to
// wait behind is bounded too; large enough that a busy connection's
// writes stay few and big (the kernel takes at most a socket buffer of it
// per call anyway).
const BatchMax = 1 << 20

// Sender owns a connection's write side. Output accumulates in the owner's
// Outbox under the owner's lock; whoever holds the Sender's token takes
// segments from its front into a batch and writes them. The token is held
// by the connection's writer goroutine, or for a moment by another
// goroutine that just queued output for an idle connection and writes it
// itself, without waiting for the socket (TryFlush). Waking a goroutine on
// another vCPU costs tens of microseconds on a virtual machine: a relay
// hop's round trip measured 115 µs with a hand-off to a writer goroutine
// and 33 µs without.
type Sender struct {
	sock *unixsock.Conn

	// take moves output from the owner's Outbox into batch under the
	// owner's lock, with Outbox.TakeInto. It returns false if there is
	// nothing to take, or, when descOK is false, if the pending frames
	// carry descriptors (which only a blocking write sends whole).
	take func(batch *Outbox, descOK bool) (took, empty bool)
	// sent is called after a batch of n bytes and nfds descriptors has
	// been written, to let the owner account for it.
	sent func(n, nfds int)

	token sync.Mutex
	batch Outbox // the batch being written, owned by the token holder
	seg   int    // the first segment of batch not yet written whole
	off   int    // bytes of batch.segs[seg] already written
	mark  int    // batch.marks before this one have had their descriptors sent
	iov   [][]byte
	fds   []int
}

// NewSender returns a Sender for sock; see the type's doc for take and sent.
func NewSender(sock *unixsock.Conn, take func(batch *Outbox, descOK bool) (took, empty bool), sent func(n, nfds int)) *Sender {
	return &Sender{sock: sock, take: take, sent: sent}
}

// Flush writes everything pending, waiting for the socket as needed; the
// writer goroutine calls it. After an error (a write deadline, say) what is
// left stays, and the next Flush goes on from where this one stopped.
func (s *Sender) Flush() error {
	s.token.Lock()
	defer s.token.Unlock()
	_, err := s.writeSome(true)
	return err
}

// FlushThen is Flush, and then calls check while still holding the token,
// so that no TryFlush can start between the flush and what check decides
// (the writer goroutine uses it to decide it is done).
func (s *Sender) FlushThen(check func() bool) (bool, error) {
	s.token.Lock()
	defer s.token.Unlock()
	if _, err := s.writeSome(true); err != nil {
		return false, err
	}
	return check(), nil
}

// TryFlush writes what is pending without waiting, if the token is free. It
// reports whether everything went out; if not, the caller must wake the
// writer goroutine to finish.
func (s *Sender) TryFlush() bool {
	if !s.token.TryLock() {
		return false
	}
	defer s.token.Unlock()
	done, err := s.writeSome(false)
	return done && err == nil
}

// Close releases the descriptors and references of a batch that will never
// be finished.
func (s *Sender) Close() {
	s.token.Lock()
	s.batch.Reset()
	s.seg, s.off, s.mark = 0, 0, 0
	s.token.Unlock()
}

// writeSome writes the batch in hand, then takes and writes more until the
// owner has nothing left; without wait it stops where the socket is full.
func (s *Sender) writeSome(wait bool) (done bool, err error) {
	for {
		if s.seg < len(s.batch.segs) {
			if wait {
				err = s.writeBlocking()
			} else {
				err = s.writeNow()
			}
			if err != nil || s.seg < len(s.batch.segs) {
				return false, err
			}
		}
		if n := s.batch.Len(); n > 0 {
			s.sent(n, s.batch.FDs())
		}
		s.seg, s.off, s.mark = 0, 0, 0
		took, empty := s.take(&s.batch, wait)
		if !took {
			return empty, nil
		}
	}
}

// writeNow writes what the socket takes at once, the batch's segments in
// one sendmsg. Its batches carry no descriptors (take refuses them without
// wait).
func (s *Sender) writeNow() error {
	s.iov = s.iov[:0]
	for i := s.seg; i < len(s.batch.segs); i++ {
		b := s.batch.segs[i].buf
		if i == s.seg {
			b = b[s.off:]
		}
		s.iov = append(s.iov, b)
	}
	n, err := s.sock.TryWriteBuffers(s.iov)
	clear(s.iov)
	s.advance(int(n))
	return err
}

// writeBlocking writes the rest of the batch, waiting for the socket, in as
// few sendmsg calls as the descriptors allow: a call carries the
// descriptors of every frame that starts in it, at most the kernel's
// MaxFDsPerMessage, attached to its first byte, which is at or before
// each of those frames' first bytes, as the protocol requires.
func (s *Sender) writeBlocking() error {
	for s.seg < len(s.batch.segs) {
		pos := s.position()
		end := s.batch.end
		s.fds = s.fds[:0]
		next := s.mark
		for ; next < len(s.batch.marks); next++ {
			m := &s.batch.marks[next]
			if len(s.fds)+len(m.fds) > unixsock.MaxFDsPerMessage {
				end = m.pos
				break
			}
			s.fds = append(s.fds, m.fds...)
		}
		s.iov = s.iov[:0]
		at := pos
		for i := s.seg; i < len(s.batch.segs) && at < end; i++ {
			b := s.batch.segs[i].buf
			if i == s.seg {
				b = b[s.off:]
			}
			if rest := end - at; int64(len(b)) > rest {
				b = b[:rest]
			}
			s.iov = append(s.iov, b)
			at += int64(len(b))
		}
		n, err := s.sock.WriteBuffers(s.iov, s.fds)
		clear(s.iov) // keep no reference to the segments
		if n > 0 {
			s.mark = next // sent with the first byte
		}
		s.advance(int(n))
		if err != nil {
			return err
		}
	}
	return nil
}

// position returns the stream position of the first unwritten byte.
func (s *Sender) position() int64 {
	pos := s.batch.start + int64(s.off)
	for _, seg := range s.batch.segs[:s.seg] {
		pos += int64(len(seg.buf))
	}
	return pos
}

// advance moves the write cursor over n written bytes.
func (s *Sender) advance(n int) {
	for n > 0 {
		rest := len(s.batch.segs[s.seg].buf) - s.off
		if n < rest {
			s.off += n
			return
		}
		n -= rest
		s.seg++
		s.off = 0
	}
	for s.seg < len(s.batch.segs) && len(s.batch.segs[s.seg].buf) == s.off {
		s.seg++
		s.off = 0
	}
}
