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
//
// Subscriptions of one connection to the same pattern, in the same queue
// group and with the same slow-consumer policy, share one subscription at
// the broker, which the first of them makes and the last to leave ends.
// Each still behaves as a subscription of its own: without a group, every
// one of them gets every message (each its own Msg and its own
// descriptors of the message's files); in a group, each message goes to
// one of them, so that the whole group, on this connection and others,
// handles each message once.
type Subscription struct {
	conn    *Conn
	bs      *brokerSub // the broker's subscription it shares; set once, by attach
	pattern string
	group   string

	q            msgQueue
	pumpDone     chan struct{} // closed when the handler's goroutine is done; nil without a handler
	closing      atomic.Bool   // set by the first Unsubscribe or Drain
	dropOnce     sync.Once
	dropped      chan struct{} // closed when the subscription ends without Drain: Unsubscribe, the connection's end
	stopped      chan struct{} // closed by Unsubscribe only: queued messages are discarded
	inbox        *inbox        // set on a connection's inbox subscription: replies skip the queue
	reuse        bool          // ReuseMessages: the handler's Msgs come back for reuse
	payloadFiles bool          // PayloadFiles: memfd payloads are handed over as files, not read
	onLoss       func()        // see subConfig
	listener     bool          // see subConfig

	// Reader-owned.
	free          []*Msg // lent Msgs ready for reuse
	lastTopic     string // reused when consecutive messages share a topic
	reportedDrops uint64 // the queue's drops already reported, see reportDrops
}

// Subscribe calls handler for every message published to a topic matching
// pattern, one message at a time, in order, on a goroutine of the
// subscription's own. The Msg is the handler's to keep, unless the
// subscription is made with ReuseMessages.
//
// Delivery is at most once, in order, and every loss is reported: a
// message the subscription falls too far behind for is dropped, counted
// in Dropped, and reported to the error handler as a *LostError. With
// DisconnectWhenSlow the broker instead closes the connection rather than
// drop a message, and the connection ends with an error matching
// ErrSlowConsumer. Options apply to every Subscribe method.
func (c *Conn) Subscribe(pattern string, handler func(*Msg), opts ...SubOption) (*Subscription, error) {
	return c.QueueSubscribe(pattern, "", handler, opts...)
}

// QueueSubscribe is Subscribe as a member of queue group group: each message
// goes to one member of the group (picked at random by the broker among the
// group's connections, and in turn among the members on one connection)
// and to every plain subscriber.
func (c *Conn) QueueSubscribe(pattern, group string, handler func(*Msg), opts ...SubOption) (*Subscription, error) {
	s, err := c.subscribeWith(pattern, group, subOptions(opts))
	if err != nil {
		return nil, err
	}
	s.startPump(handler)
	return s, nil
}

// SubscribeChan sends every matching message to ch, in order, blocking while
// ch is full; messages wait in the subscription's queue meanwhile.
func (c *Conn) SubscribeChan(pattern string, ch chan<- *Msg, opts ...SubOption) (*Subscription, error) {
	cfg := subOptions(opts)
	if cfg.reuse {
		return nil, errReuseNeedsHandler
	}
	s, err := c.subscribeWith(pattern, "", cfg)
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
func (c *Conn) SubscribeSync(pattern string, opts ...SubOption) (*Subscription, error) {
	return c.QueueSubscribeSync(pattern, "", opts...)
}

// QueueSubscribeSync is SubscribeSync as a member of queue group group.
func (c *Conn) QueueSubscribeSync(pattern, group string, opts ...SubOption) (*Subscription, error) {
	cfg := subOptions(opts)
	if cfg.reuse {
		return nil, errReuseNeedsHandler
	}
	return c.subscribeWith(pattern, group, cfg)
}

// subscribeWith makes a subscription configured by cfg.
func (c *Conn) subscribeWith(pattern, group string, cfg subConfig) (*Subscription, error) {
	if err := topics.ValidPattern(pattern); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPattern, err)
	}
	if cfg.flags&wire.SubMonitor != 0 && (group != "" || cfg.flags&wire.SubDisconnect != 0) {
		return nil, errMonitorOptions
	}
	if err := checkRetainedSub(group, cfg.flags); err != nil { // retain.go
		return nil, err
	}
	if group != "" {
		if err := topics.ValidGroup(group); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGroup, err)
		}
	}
	s := &Subscription{conn: c, pattern: pattern, group: group, q: newMsgQueue(),
		inbox: cfg.inbox, reuse: cfg.reuse, payloadFiles: cfg.payloadFiles, onLoss: cfg.onLoss, listener: cfg.listener,
		dropped: make(chan struct{}), stopped: make(chan struct{})}
	if err := c.attach(s, c.keyFor(pattern, group, cfg.flags)); err != nil { // retain.go
		return nil, err
	}
	return s, nil
}

// Pattern returns the pattern the subscription was made with.
func (s *Subscription) Pattern() string { return s.pattern }

// Dropped returns how many messages the subscription has lost: those the
// broker dropped because the connection fell behind (it says how many in
// its gap notices), and those the subscription's own queue dropped because
// it was full. The error handler hears of them too, as *LostError
// reports.
func (s *Subscription) Dropped() uint64 {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return s.q.dropped + s.q.lost
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

// leave begins the first Unsubscribe or Drain, which it reports with
// first; later calls get ErrClosed. err is the connection's error if it
// has ended.
func (s *Subscription) leave() (first bool, err error) {
	if !s.closing.CompareAndSwap(false, true) || s.q.ended() {
		return false, ErrClosed
	}
	return true, s.conn.leaveBroker(s)
}

// stop ends the subscription at once, discarding what is queued.
func (s *Subscription) stop(err error) {
	s.conn.detach(s)
	s.q.end(err)
	s.q.discard()
	s.dropOnce.Do(func() { close(s.dropped) })
	close(s.stopped) // once: only the first Unsubscribe or Drain gets here
}

// Drain stops the subscription without losing what is on its way: the
// broker stops delivering to it, and every message it had already sent
// for it is still handed over (to the handler or channel, or left for
// Next) before the subscription ends with ErrClosed. It returns once the
// broker has confirmed (a round trip, as Flush) and, for a subscription
// with a handler or channel, the handler has returned for the last
// message; ctx bounds the wait. A queue group member that leaves with
// Drain loses no message for its group: while other members on its
// connection stay, the group's messages go to them as soon as Drain
// begins. One that leaves with Unsubscribe, or whose connection breaks,
// loses those in flight to it. Drain called from the subscription's own
// handler cannot wait for that handler: it waits until ctx ends or the
// connection closes.
func (s *Subscription) Drain(ctx context.Context) error {
	if _, err := s.leave(); err != nil {
		return err
	}
	c := s.conn
	// The broker answers a PING after everything it queued before it, and
	// the reader hands over what it read before the PONG and then detaches
	// s, on its own goroutine, so that no message read after goes to s:
	// once the PONG is in, every message for s is in its queue, and a
	// queue group's later messages go to the members that stay.
	if err := c.ping(ctx, func() { c.detach(s) }); err != nil {
		s.stop(ErrClosed) // the UNSUB may be sent: end as Unsubscribe would
		return err
	}
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
			// own, files, headers) must not stay reachable while it waits;
			// its buffers go on (big to its queue: takeAll).
			*m = Msg{own: m.own, big: m.big}
		}
	}
}
