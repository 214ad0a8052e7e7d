package clientlib

import (
	"context"
	"sync"
)

// msgQueue carries a subscription's messages from the connection's reader to
// its consumer with one lock operation per read batch on each side, not per
// message: the reader collects a batch without locking, hands it over in
// flush, and the consumer swaps the whole handed-over queue into its own
// slice in next.
type msgQueue struct {
	// Reader side, touched by the reader goroutine only.
	batch      []*Msg
	batchBytes int
	batchDrops int // messages refused before they were read (refuse)

	// Hand-over, under mu.
	mu       sync.Mutex
	in       []*Msg
	inBytes  int
	err      error         // why the subscription ended; nil while it lives
	bigSpare [][]byte      // memfd payload buffers handed back by a ReuseMessages handler (keepBigLocked)
	dropped  uint64        // messages this queue had no room for
	lost     uint64        // messages the broker dropped (gap notices)
	lent     []*Msg        // Msgs the handler has finished with, for the reader to reuse (ReuseMessages)
	lentCost int           // what lent holds, in bytes (see lentCost)
	ready    chan struct{} // capacity 1: messages were handed over
	done     chan struct{} // closed when the subscription ends

	// Consumer side, under cmu, so that several goroutines may call Next.
	cmu  sync.Mutex
	out  []*Msg
	head int
}

func newMsgQueue() msgQueue {
	return msgQueue{ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// msgBytes is what m counts against its subscription's byte limit: its
// payload, in Data or in a PayloadFile.
func msgBytes(m *Msg) int { return len(m.Data) + m.held }

// add appends m to the reader's batch and reports whether the batch was
// empty, so the reader knows to flush this queue at the end of its read.
func (q *msgQueue) add(m *Msg) bool {
	q.batch = append(q.batch, m)
	q.batchBytes += msgBytes(m)
	return len(q.batch) == 1 && q.batchDrops == 0
}

// fits reports whether a message of n bytes that came in a memfd would
// be kept if it joined the batch now, so that the reader reads (or
// duplicates) its payload only then: a sparse memfd costs its publisher
// nothing and its receiver its whole size, so a burst of them, read
// first and dropped at flush, would cost the receiver the burst's sum.
// It judges as flush does, counting the whole batch, so what it lets
// through flush keeps unless an earlier message in the batch is dropped.
// Reader only.
func (q *msgQueue) fits(n, maxMsgs, maxBytes int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	waiting := len(q.in) + len(q.batch)
	return q.err == nil && waiting < maxMsgs && (waiting == 0 || q.inBytes+q.batchBytes+n <= maxBytes)
}

// refuse counts a message fits turned away as one the queue had no room
// for, and reports whether the reader must flush the queue at the end of
// its read, as add does.
func (q *msgQueue) refuse() bool {
	q.batchDrops++
	return len(q.batch) == 0 && q.batchDrops == 1
}

// flush hands the batch over, keeping within maxMsgs and maxBytes waiting
// messages; the rest are dropped, their files closed. It returns how many
// were dropped now and in all, and how many now wait for the consumer.
func (q *msgQueue) flush(maxMsgs, maxBytes int) (dropped int, total uint64, waiting int) {
	batch := q.batch
	refused := q.batchDrops
	q.batchDrops = 0
	q.mu.Lock()
	keep := len(batch)
	ended := q.err != nil
	if ended {
		keep = 0
	} else if room := maxMsgs - len(q.in); keep > room || q.inBytes+q.batchBytes > maxBytes {
		keep = 0
		// A payload that came in a memfd may be larger than maxBytes (it
		// is bounded by max_fd_payload, not max_payload): it goes when
		// nothing waits, so the bound is on the backlog.
		for keep < len(batch) && keep < room &&
			(q.inBytes+msgBytes(batch[keep]) <= maxBytes || batch[keep].viaFD && len(q.in)+keep == 0) {
			q.inBytes += msgBytes(batch[keep])
			keep++
		}
	} else {
		q.inBytes += q.batchBytes
	}
	q.in = append(q.in, batch[:keep]...)
	if !ended {
		q.dropped += uint64(len(batch) - keep + refused)
	}
	total, waiting = q.dropped, len(q.in)
	q.mu.Unlock()
	for _, m := range batch[keep:] {
		m.CloseFiles()
	}
	clear(batch)
	q.batch, q.batchBytes = batch[:0], 0
	if keep > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	if ended {
		return 0, total, waiting
	}
	return len(batch) - keep + refused, total, waiting
}

// addLost counts n messages lost in the broker and returns how many the
// subscription has lost in all.
func (q *msgQueue) addLost(n uint64) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lost += n
	return q.lost + q.dropped
}

// next returns the next message, waiting until ctx ends. After the queue
// ends it returns what is left, then the reason.
func (q *msgQueue) next(ctx context.Context) (*Msg, error) {
	q.cmu.Lock()
	defer q.cmu.Unlock()
	for {
		if q.head < len(q.out) {
			m := q.out[q.head]
			q.out[q.head] = nil
			q.head++
			return m, nil
		}
		q.mu.Lock()
		q.out, q.in = q.in, q.out[:0]
		q.head, q.inBytes = 0, 0
		err := q.err
		q.mu.Unlock()
		if len(q.out) > 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
		q.cmu.Unlock()
		select {
		case <-q.ready:
		case <-q.done:
		case <-ctx.Done():
			q.cmu.Lock()
			return nil, ctx.Err()
		}
		q.cmu.Lock()
	}
}

// reason returns why the queue ended; nil while it lives.
func (q *msgQueue) reason() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// ended reports whether the queue has ended.
func (q *msgQueue) ended() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err != nil
}

// takeAll waits, like next, until messages are queued or the queue has
// ended, and then returns everything handed over so far, for a single
// consumer to go through without taking the lock per message. batch, the
// consumer's previous result, is given back for reuse: its Msgs too, if
// lent (see ReuseMessages), else its elements must have been cleared. After
// the queue ends it returns what is left, then the reason.
func (q *msgQueue) takeAll(batch []*Msg, lent bool) ([]*Msg, error) {
	for {
		q.mu.Lock()
		if lent {
			for _, m := range batch {
				if m.big != nil {
					q.keepBigLocked(m.big)
					m.big, m.Data = nil, nil
				}
				if q.lentCost += lentCost(m); q.lentCost > maxLentBytes {
					break
				}
				q.lent = append(q.lent, m)
			}
			q.lentCost = min(q.lentCost, maxLentBytes)
			clear(batch)
			lent = false
		}
		// Swapped, not copied: the consumer hands back its finished batch
		// for the reader to fill.
		batch, q.in = q.in, batch[:0]
		q.inBytes = 0
		err := q.err
		q.mu.Unlock()
		if len(batch) > 0 {
			return batch, nil
		}
		if err != nil {
			return batch, err
		}
		select {
		case <-q.ready:
		case <-q.done:
		}
	}
}

// takeReturned returns the Msgs the handler has finished with, taking
// spare, an empty slice, in their place.
func (q *msgQueue) takeReturned(spare []*Msg) []*Msg {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.lent
	q.lent, q.lentCost = spare[:0], 0
	return r
}

// end marks the queue ended with err; what is queued stays for next.
func (q *msgQueue) end(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
		close(q.done)
	}
}

// discard drops everything handed over and not yet taken, closing files.
func (q *msgQueue) discard() {
	q.mu.Lock()
	in := q.in
	q.in, q.inBytes = nil, 0
	q.mu.Unlock()
	q.cmu.Lock()
	out := q.out[q.head:]
	q.out, q.head = nil, 0
	q.cmu.Unlock()
	for _, m := range append(in, out...) {
		m.CloseFiles()
	}
}

// Buffers a ReuseMessages subscription keeps for payloads that came in a
// memfd: at most maxBigSpares of at most maxBigSpare bytes each. A memfd
// payload read into new memory costs a page fault per page of it the
// first time (measured here: a 64 MiB payload to four such subscribers
// took 1.1 s a message into new memory, 0.66 s into kept buffers); a
// handler that holds one Msg while the reader fills the next needs two.
const (
	maxBigSpares = 2
	maxBigSpare  = 64 << 20
)

// keepBigLocked keeps buf, a lent Msg's memfd payload buffer the handler
// has finished with, for a later payload, within the bounds above; the
// smallest kept one makes way for a larger one. q.mu is held.
func (q *msgQueue) keepBigLocked(buf []byte) {
	if cap(buf) > maxBigSpare {
		return
	}
	if len(q.bigSpare) < maxBigSpares {
		q.bigSpare = append(q.bigSpare, buf[:0])
		return
	}
	small := 0
	for i, b := range q.bigSpare {
		if cap(b) < cap(q.bigSpare[small]) {
			small = i
		}
	}
	if cap(buf) > cap(q.bigSpare[small]) {
		q.bigSpare[small] = buf[:0]
	}
}

// takeBig returns a kept buffer of at least n bytes, or nil.
func (q *msgQueue) takeBig(n int) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, b := range q.bigSpare {
		if cap(b) >= n {
			last := len(q.bigSpare) - 1
			q.bigSpare[i] = q.bigSpare[last]
			q.bigSpare[last] = nil
			q.bigSpare = q.bigSpare[:last]
			return b[:n]
		}
	}
	return nil
}
