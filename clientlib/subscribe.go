package clientlib

import (
	"context"
	"fmt"

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

	q     msgQueue
	inbox *inbox // set on a connection's inbox subscription: replies skip the queue

	lastTopic string // reader-owned: reused when consecutive messages share a topic
}

// Subscribe calls handler for every message published to a topic matching
// pattern, one message at a time, in order, on a goroutine of the
// subscription's own.
func (c *Conn) Subscribe(pattern string, handler func(*Msg)) (*Subscription, error) {
	return c.QueueSubscribe(pattern, "", handler)
}

// QueueSubscribe is Subscribe as a member of queue group group: each message
// goes to one member of the group (picked at random by the broker) and to
// every plain subscriber.
func (c *Conn) QueueSubscribe(pattern, group string, handler func(*Msg)) (*Subscription, error) {
	s, err := c.subscribe(pattern, group)
	if err != nil {
		return nil, err
	}
	go s.pump(handler)
	return s, nil
}

// SubscribeChan sends every matching message to ch, in order, blocking while
// ch is full; messages wait in the subscription's queue meanwhile.
func (c *Conn) SubscribeChan(pattern string, ch chan<- *Msg) (*Subscription, error) {
	s, err := c.subscribe(pattern, "")
	if err != nil {
		return nil, err
	}
	go s.pump(func(m *Msg) {
		select {
		case ch <- m:
		case <-s.q.done:
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
	return c.subscribeWith(pattern, group, nil)
}

func (c *Conn) subscribeWith(pattern, group string, in *inbox) (*Subscription, error) {
	if err := topics.ValidPattern(pattern); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPattern, err)
	}
	if group != "" {
		if err := topics.ValidGroup(group); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGroup, err)
		}
	}
	s := &Subscription{conn: c, pattern: pattern, group: group, q: newMsgQueue(), inbox: in}
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

// Unsubscribe stops the subscription. Messages still queued are discarded
// (their files closed); Next then returns ErrClosed.
func (s *Subscription) Unsubscribe() error {
	c := s.conn
	c.forget(s)
	c.mu.Lock()
	err := c.err
	if err == nil {
		c.queueLocked(wire.AppendControl(nil, wire.OpUnsub, s.sid, nil))
	}
	c.mu.Unlock()
	s.q.end(ErrClosed)
	s.q.discard()
	return err
}

// Next returns the next message, waiting for one until ctx ends. After the
// subscription ends it returns what is still queued, then the reason
// (ErrClosed, or the connection's error). Several goroutines may call Next
// at once; each message goes to one of them.
func (s *Subscription) Next(ctx context.Context) (*Msg, error) { return s.q.next(ctx) }

// end ends the subscription with err; queued messages stay for Next.
func (s *Subscription) end(err error) { s.q.end(err) }

// pump hands queued messages to f until the subscription ends.
func (s *Subscription) pump(f func(*Msg)) {
	for {
		m, err := s.Next(context.Background())
		if err != nil {
			return
		}
		f(m)
	}
}
