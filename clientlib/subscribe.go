package clientlib

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// Subscription receives the messages published to topics matching its
// pattern. Messages wait in the subscription's queue, bounded by
// WithSubscriptionLimits, until Next takes them or the handler or channel
// given at subscribe time receives them, one at a time and in order.
type Subscription struct {
	conn    *Conn
	sid     uint32
	pattern string
	group   string
	seq     uint64 // the frame number of its SUB, to match an ERR to it

	q        msgQueue
	pumpDone chan struct{} // closed when the handler's goroutine is done; nil without a handler
	closing  atomic.Bool   // set by the first Unsubscribe or Drain
	dropOnce sync.Once
	dropped  chan struct{} // closed when the subscription ends without Drain: Unsubscribe, the connection's end
	stopped  chan struct{} // closed by Unsubscribe only: queued messages are discarded
	inbox    *inbox        // set on a connection's inbox subscription: replies skip the queue
	reuse    bool          // ReuseMessages: the handler's Msgs come back for reuse
	free     []*Msg        // reader-owned: lent Msgs ready for reuse

	lastTopic string // reader-owned: reused when consecutive messages share a topic
}

// Subscribe calls handler for every message published to a topic matching
// pattern, one message at a time, in order, on a goroutine of the
// subscription's own. The Msg is the handler's to keep, unless the
// subscription is made with ReuseMessages.
func (c *Conn) Subscribe(pattern string, handler func(*Msg), opts ...SubOption) (*Subscription, error) {
	return c.QueueSubscribe(pattern, "", handler, opts...)
}

// QueueSubscribe is Subscribe as a member of queue group group: each message
// goes to one member of the group (picked at random by the broker) and to
// every plain subscriber.
func (c *Conn) QueueSubscribe(pattern, group string, handler func(*Msg), opts ...SubOption) (*Subscription, error) {
	var cfg subConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	s, err := c.subscribeWith(pattern, group, nil, cfg.reuse)
	if err != nil {
		return nil, err
	}
	s.startPump(handler)
	return s, nil
}

// SubscribeChan sends every matching message to ch, in order, blocking while
// ch is full; messages wait in the subscription's queue meanwhile.
func (c *Conn) SubscribeChan(pattern string, ch chan<- *Msg) (*Subscription, error) {
	s, err := c.subscribe(pattern, "")
	if err != nil {
		return nil, err
	}
	// A Drain still hands every message to ch; only Unsubscribe, or the
	// connection ending, makes the forwarder give up on a full channel.
	s.startPump(func(m *Msg) {
		select {
		case ch <- m:
		case <-s.dropped:
			m.CloseFiles()
		}
	})
	return s, nil
}

// SubscribeSync subscribes without a handler: take messages with Next.
func (c *Conn) SubscribeSync(pattern string) (*Subscription, error) {
	return c.subscribe(pattern, "")
}

// QueueSubscribeSync is SubscribeSync as a member of queue group group.
func (c *Conn) QueueSubscribeSync(pattern, group string) (*Subscription, error) {
	return c.subscribe(pattern, group)
}

func (c *Conn) subscribe(pattern, group string) (*Subscription, error) {
	return c.subscribeWith(pattern, group, nil, false)
}

// subscribeWith makes a subscription, for the inbox if in is not nil; its
// messages are lent to the handler if reuse is set.
func (c *Conn) subscribeWith(pattern, group string, in *inbox, reuse bool) (*Subscription, error) {
	if err := topics.ValidPattern(pattern); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPattern, err)
	}
	if group != "" {
		if err := topics.ValidGroup(group); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGroup, err)
		}
	}
	s := &Subscription{conn: c, pattern: pattern, group: group, q: newMsgQueue(), inbox: in, reuse: reuse,
		dropped: make(chan struct{}), stopped: make(chan struct{})}
	// Under c.mu the SUB is only queued, not sent, so no MSG for it can
	// arrive before it is in subs; and seq is set before anyone can see s.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	c.subsMu.Lock()
	c.nextSID++
	s.sid = c.nextSID
	c.subsMu.Unlock()
	c.queueLocked(wire.AppendSub(nil, s.sid, pattern, group))
	s.seq = c.seq
	c.subsMu.Lock()
	c.subs[s.sid] = s
	c.subsGen.Add(1)
	c.subsMu.Unlock()
	return s, nil
}

func (c *Conn) forget(s *Subscription) {
	c.subsMu.Lock()
	delete(c.subs, s.sid)
	c.subsGen.Add(1)
	c.subsMu.Unlock()
}

// Pattern returns the pattern the subscription was made with.
func (s *Subscription) Pattern() string { return s.pattern }

// Dropped returns how many messages the subscription dropped because its
// queue was full.
func (s *Subscription) Dropped() uint64 {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return s.q.dropped
}

// Unsubscribe stops the subscription at once. Messages still queued, and
// those on their way from the broker, are discarded (their files closed);
// Next then returns ErrClosed, as does a second Unsubscribe. Drain stops a
// subscription without discarding.
func (s *Subscription) Unsubscribe() error {
	first, err := s.leave()
	if first {
		s.stop(ErrClosed)
	}
	return err
}

// leave queues the UNSUB of the first Unsubscribe or Drain, which it reports
// with first; later calls get ErrClosed. err is the connection's error if it
// has ended.
func (s *Subscription) leave() (first bool, err error) {
	if !s.closing.CompareAndSwap(false, true) || s.q.ended() {
		return false, ErrClosed
	}
	c := s.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.queueLocked(wire.AppendControl(nil, wire.OpUnsub, s.sid, nil))
	}
	return true, c.err
}

// stop ends the subscription at once, discarding what is queued.
func (s *Subscription) stop(err error) {
	s.conn.forget(s)
	s.q.end(err)
	s.q.discard()
	s.dropOnce.Do(func() { close(s.dropped) })
	close(s.stopped) // once: only the first Unsubscribe or Drain gets here
}

// Drain stops the subscription without losing what is on its way: the
// broker stops delivering to it, and every message it had already sent is
// still handed over (to the handler or channel, or left for Next) before
// the subscription ends with ErrClosed. It returns once the broker has
// confirmed and, for a subscription with a handler or channel, the handler
// has returned for the last message; ctx bounds the wait. A queue group
// member that leaves with Drain loses no message for its group; one that
// leaves with Unsubscribe, or whose connection breaks, loses those in
// flight to it. Drain called from the subscription's own handler cannot
// wait for that handler: it waits until ctx ends or the connection closes.
func (s *Subscription) Drain(ctx context.Context) error {
	if _, err := s.leave(); err != nil {
		return err
	}
	c := s.conn
	// The broker answers a PING after everything it queued before it, and
	// the reader hands over what it read before the PONG: once Flush
	// returns, every message for s is in its queue.
	if err := c.Flush(ctx); err != nil {
		s.stop(ErrClosed) // the UNSUB is sent: end as Unsubscribe would
		return err
	}
	c.forget(s)
	s.q.end(ErrClosed)
	if s.pumpDone != nil {
		select {
		case <-s.pumpDone:
		case <-c.quit:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Next returns the next message, waiting for one until ctx ends. After the
// subscription ends it returns what is still queued, then the reason
// (ErrClosed, or the connection's error). Several goroutines may call Next
// at once; each message goes to one of them.
func (s *Subscription) Next(ctx context.Context) (*Msg, error) { return s.q.next(ctx) }

// end ends the subscription with err because its connection ended or the
// broker refused it; queued messages stay for Next, but a channel
// subscription's forwarder stops waiting for room.
func (s *Subscription) end(err error) {
	s.q.end(err)
	s.dropOnce.Do(func() { close(s.dropped) })
}

// startPump hands queued messages to f, on a goroutine of their own, until
// the subscription ends.
func (s *Subscription) startPump(f func(*Msg)) {
	s.pumpDone = make(chan struct{})
	go s.pump(f)
}

func (s *Subscription) pump(f func(*Msg)) {
	defer close(s.pumpDone)
	var batch []*Msg
	for {
		var err error
		if batch, err = s.q.takeAll(batch, s.reuse); err != nil {
			return
		}
		for i, m := range batch {
			select {
			case <-s.stopped: // Unsubscribe: what was taken is discarded too
				for _, m := range batch[i:] {
					m.CloseFiles()
				}
				return
			default:
			}
			if !s.reuse {
				batch[i] = nil // the handler's now: do not keep it alive
				f(m)
				continue
			}
			f(m)
			// Back to the store: what the Msg points at (a payload of its
			// own, files, headers) must not stay reachable while it waits.
			*m = Msg{own: m.own}
		}
	}
}
