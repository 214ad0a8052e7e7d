package wire

import (
	"sync"

	"github.com/busd/busd/unixsock"
)

// Sender owns a connection's write side. Output accumulates in the owner's
// Outbox under the owner's lock; whoever holds the Sender's token takes the
// whole Outbox (swapping in an empty one) and writes it. The token is held
// by the connection's writer goroutine, or for a moment by another
// goroutine that just queued output for an idle connection and writes it
// itself, without waiting for the socket (TryFlush). Waking a goroutine on
// another vCPU costs tens of microseconds on a virtual machine: a relay
// hop's round trip measured 115 µs with a hand-off to a writer goroutine
// and 33 µs without.
type Sender struct {
	sock *unixsock.Conn
	keep int // capacity an emptied batch buffer keeps

	// take swaps the owner's pending Outbox into batch under the owner's
	// lock. It returns false if there is nothing to take, or, when descOK
	// is false, if the pending frames carry descriptors (which only a
	// blocking write can send whole).
	take func(batch *Outbox, descOK bool) (took, empty bool)
	// sent is called after a batch of n bytes and nfds descriptors has
	// been written, to let the owner account for it.
	sent func(n, nfds int)

	token sync.Mutex
	batch Outbox // the batch being written, owned by the token holder
	off   int    // how much of batch is written
	fds   []int
}

// NewSender returns a Sender for sock; see the type's doc for take and sent.
func NewSender(sock *unixsock.Conn, keep int, take func(batch *Outbox, descOK bool) (took, empty bool), sent func(n, nfds int)) *Sender {
	return &Sender{sock: sock, keep: keep, take: take, sent: sent}
}

// Flush writes everything pending, waiting for the socket as needed; the
// writer goroutine calls it.
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

// Close releases the descriptors of a batch that will never be finished.
func (s *Sender) Close() {
	s.token.Lock()
	s.batch.Reset(0)
	s.off = 0
	s.token.Unlock()
}

func (s *Sender) writeSome(wait bool) (done bool, err error) {
	for {
		if rest := s.batch.Buf[s.off:]; len(rest) > 0 { // a batch TryFlush could not finish
			n := len(rest)
			if wait {
				_, err = s.sock.Write(rest)
			} else {
				n, err = s.sock.TryWrite(rest)
			}
			s.off += n
			if err != nil || s.off < len(s.batch.Buf) {
				return false, err
			}
		}
		if len(s.batch.Buf) > 0 {
			n, nfds := len(s.batch.Buf), s.batch.FDs()
			s.batch.Reset(s.keep)
			s.off = 0
			s.sent(n, nfds)
		}
		took, empty := s.take(&s.batch, wait)
		if !took {
			return empty, nil
		}
		if wait {
			s.fds, err = s.batch.WriteTo(s.sock, s.fds)
			s.off = len(s.batch.Buf)
		} else {
			s.off, err = s.sock.TryWrite(s.batch.Buf)
		}
		if err != nil {
			return false, err
		}
	}
}
