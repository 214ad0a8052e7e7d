package clientlib

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/busd/busd/bus/wire"
	"github.com/nats-io/nuid"
)

// InboxPrefix starts the reply topics of requests: each connection's
// private inbox, which the broker names in its INFO.
const InboxPrefix = wire.InboxPrefix

// inbox routes replies to waiting requests. A connection has one inbox
// subscription, "_INBOX.<conn id>.>", for all its requests, made on the first
// Request: each request gets its own last token, and the reader hands a
// reply straight to the request waiting on that token, with no goroutine
// between them.
type inbox struct {
	once    sync.Once
	err     error
	refused chan struct{} // closed if the broker refuses the inbox subscription
	why     error         // why, once refused is closed
	mu      sync.Mutex
	prefix  string // "_INBOX.<conn id>.", set under mu
	next    uint64
	waiting map[string]waiter // by token
	// bySeq maps the frame number of a waiting request's PUB to its
	// token, so that the broker refusing the PUB fails the request at
	// once instead of leaving it to its timeout. It holds one entry at
	// most per waiting request, removed with it.
	bySeq map[uint64]string
}

// waiter is a request waiting for its reply.
type waiter struct {
	ch  chan answer // capacity 1: the reply, or the broker's refusal
	seq uint64      // the frame number of its PUB, once queued (bindSeq); else 0
}

// answer is what ends a request's wait: a reply, or the broker's refusal
// of its PUB. The refusal travels beside the Msg rather than in it, so
// that every message received is not a field larger for the few requests
// refused.
type answer struct {
	m       *Msg
	refusal error
}

// Request publishes data (with files) to topic and waits for one reply,
// until ctx ends; ctx bounds the wait for room in the pending limit too.
// It returns at once ErrNoResponders, naming the topic, when nothing
// subscribes to it, and ErrRequestDropped when every subscriber was too far
// behind to take it. A reply that arrives after ctx ended is dropped. Many
// goroutines may have requests in flight at once.
//
// A request is never buffered for a reconnect. Made while the connection
// is reconnecting, it waits for the reconnect, within ctx, and then goes
// out. In flight when the connection is lost, it fails at once with an
// error matching ErrConnectionLost: the responder may have handled it, and
// whether to send it again is the caller's choice.
func (c *Conn) Request(ctx context.Context, topic string, data []byte, files ...*os.File) (*Msg, error) {
	return c.RequestMsg(ctx, &Msg{Topic: topic, Data: data, Files: files})
}

// RequestMsg is Request with a whole message (its Reply is replaced).
func (c *Conn) RequestMsg(ctx context.Context, m *Msg) (*Msg, error) {
	return c.request(ctx, m.Topic, func(replyTo string, pin *session) error {
		req := *m
		req.Reply = replyTo
		return c.publishMsg(ctx, &req, true, pin)
	})
}

// request sends a request to topic with send, which publishes it with the
// reply topic it is given, on the session it is given (waiting for room
// until ctx ends), and waits for the reply. The broker's statuses for a
// request nobody took are errors.
func (c *Conn) request(ctx context.Context, topic string, send func(replyTo string, pin *session) error) (*Msg, error) {
	r, err := c.exchange(ctx, topic, send)
	if err != nil {
		return nil, err
	}
	if r.Origin.Conn == 0 { // the broker's answer: nobody got the request
		switch r.Header.Get(wire.StatusHeader) {
		case wire.StatusNoResponders:
			if reason := r.Header.Get(wire.ReasonHeader); reason != "" {
				// Why nobody could take it: a name's activation failed.
				return nil, fmt.Errorf("%w for %q: %s", ErrNoResponders, topic, reason)
			}
			return nil, fmt.Errorf("%w for %q", ErrNoResponders, topic)
		case wire.StatusDropped:
			return nil, fmt.Errorf("%w: request to %q", ErrRequestDropped, topic)
		}
	}
	return r, nil
}

// exchange is request without looking at the reply: for requests the
// broker answers itself, whose statuses mean something else (peer.go).
func (c *Conn) exchange(ctx context.Context, topic string, send func(replyTo string, pin *session) error) (*Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bus: request to %q: %w", topic, err)
	}
	if err := c.openInbox(); err != nil {
		return nil, err
	}
	s, err := c.live(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: request to %q: %w", topic, err)
	}
	in := &c.inbox
	select {
	case <-in.refused:
		return nil, in.refusal(topic)
	default:
	}
	ch := make(chan answer, 1)
	in.mu.Lock()
	in.next++
	token := strconv.FormatUint(in.next, 36)
	in.waiting[token] = waiter{ch: ch}
	prefix := in.prefix // a reconnect changes it, and fails this request
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		in.takeLocked(token)
		in.mu.Unlock()
		select { // a reply that raced with giving up: close its files
		case a := <-ch:
			if a.m != nil {
				a.m.CloseFiles()
			}
		default:
		}
	}()

	if err := send(prefix+token, s); err != nil {
		return nil, err
	}
	select {
	case a := <-ch:
		if br, ok := a.refusal.(badReply); ok {
			return nil, fmt.Errorf("bus: request to %q: %w", topic, br.err)
		}
		if a.refusal != nil {
			return nil, &requestRefused{topic, a.refusal}
		}
		return a.m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("bus: request to %q: %w", topic, ctx.Err())
	case <-in.refused:
		return nil, in.refusal(topic)
	case <-s.down:
		return nil, fmt.Errorf("bus: request to %q: %w", topic, ErrConnectionLost)
	case <-c.quit:
		return nil, c.closedErr()
	}
}

// openInbox makes the connection's inbox subscription, once.
func (c *Conn) openInbox() error {
	in := &c.inbox
	in.once.Do(func() {
		// The broker's inbox for this connection: replies under any other
		// would be refused. A broker that names none predates private
		// inboxes, and any unguessable prefix serves.
		info := c.info.Load()
		prefix := info.Inbox + "."
		if info.Inbox == "" {
			prefix = InboxPrefix + nuid.Next() + "."
		}
		in.mu.Lock()
		in.prefix = prefix
		in.waiting = map[string]waiter{}
		in.bySeq = map[uint64]string{}
		in.mu.Unlock()
		in.refused = make(chan struct{})
		_, in.err = c.subscribeWith(in.prefix+">", "", subConfig{inbox: in})
	})
	return in.err
}

// refuse records that the broker refused the inbox subscription: every
// request, waiting or to come, fails with why instead of waiting for a
// reply that cannot arrive.
func (in *inbox) refuse(why error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.why == nil {
		in.why = why
		close(in.refused)
	}
}

func (in *inbox) refusal(topic string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return fmt.Errorf("bus: request to %q: the broker refused this connection's reply inbox: %w", topic, in.why)
}

// deliverReply hands a message on the inbox subscription to the request
// waiting for it, or drops it if none is (any more).
func (in *inbox) deliverReply(m *Msg) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !strings.HasPrefix(m.Topic, in.prefix) { // of an earlier session's inbox
		m.CloseFiles()
		return
	}
	ch := in.takeLocked(m.Topic[len(in.prefix):])
	if ch == nil {
		m.CloseFiles()
		return
	}
	m.sub = nil // the inbox serves the whole connection: not for the caller to unsubscribe
	// Sent under the lock (capacity 1, one send per token: it never
	// blocks), so a request giving up, which drains ch after taking the
	// lock, cannot miss it and leak its files.
	ch <- answer{m: m}
}

// bindSeq records that frame seq is the PUB of the request whose reply
// topic is reply, if reply is one of a waiting request. Called under c.mu,
// where the frame gets its number.
func (in *inbox) bindSeq(seq uint64, reply string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.prefix == "" || !strings.HasPrefix(reply, in.prefix) {
		return
	}
	token := reply[len(in.prefix):]
	if w, ok := in.waiting[token]; ok {
		w.seq = seq
		in.waiting[token] = w
		in.bySeq[seq] = token
	}
}

// takeLocked removes the request waiting on token and returns its
// channel; nil if none is. Under in.mu.
func (in *inbox) takeLocked(token string) chan answer {
	w, ok := in.waiting[token]
	if !ok {
		return nil
	}
	delete(in.waiting, token)
	if w.seq != 0 {
		delete(in.bySeq, w.seq)
	}
	return w.ch
}

// refuseSeq fails the request whose PUB was frame seq with the broker's
// refusal; it reports whether there was one.
func (in *inbox) refuseSeq(seq uint64, err error) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	token, ok := in.bySeq[seq]
	if !ok {
		return false
	}
	ch := in.takeLocked(token)
	if ch == nil {
		delete(in.bySeq, seq)
		return false
	}
	ch <- answer{refusal: err} // capacity 1, one send per token, as in deliverReply
	return true
}

// failReply fails the request waiting for a reply to topic, which
// arrived with a payload memfd that failed its check (largepayload.go),
// at once rather than at its timeout; it reports whether one was waiting.
func (in *inbox) failReply(topic string, err error) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.prefix == "" || !strings.HasPrefix(topic, in.prefix) {
		return false
	}
	ch := in.takeLocked(topic[len(in.prefix):])
	if ch == nil {
		return false
	}
	ch <- answer{refusal: badReply{err}} // capacity 1, one send per token, as in deliverReply
	return true
}

// badReply is the answer to a request whose reply was dropped for its
// payload descriptor.
type badReply struct{ err error }

func (b badReply) Error() string { return b.err.Error() }

// requestRefused is a request whose PUB the broker refused.
type requestRefused struct {
	topic string
	err   error // a *ServerError
}

func (e *requestRefused) Error() string {
	return fmt.Sprintf("bus: request to %q refused: %s", e.topic, strings.TrimPrefix(e.err.Error(), "bus: "))
}

func (e *requestRefused) Unwrap() error { return e.err }

// forgetSeqs drops the frame numbers of the requests' PUBs when their
// connection is lost: the next connection numbers its frames from 1 again,
// and a refusal of one of its frames must not fail an old request (which
// fails with ErrConnectionLost anyway). Under c.mu.
func (in *inbox) forgetSeqs() {
	in.mu.Lock()
	defer in.mu.Unlock()
	clear(in.bySeq)
	for token, w := range in.waiting {
		w.seq = 0
		in.waiting[token] = w
	}
}
