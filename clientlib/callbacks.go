package clientlib

import "sync"

// callbacks runs the error handler, and the disconnect, reconnect and
// closed handlers, on a goroutine of its own, in order, so
// that a handler may call anything on the connection, Close included,
// without deadlocking the reader it would otherwise run on.
type callbacks struct {
	mu     sync.Mutex
	queue  []callback
	closed bool
	wake   chan struct{} // capacity 1
}

type callback struct {
	sub *Subscription
	err error
	fn  func() // if not nil, run instead of the error handler
}

func newCallbacks() *callbacks { return &callbacks{wake: make(chan struct{}, 1)} }

// push queues an error for the handler; after close it is dropped.
func (cb *callbacks) push(sub *Subscription, err error) {
	cb.mu.Lock()
	if !cb.closed {
		cb.queue = append(cb.queue, callback{sub: sub, err: err})
	}
	cb.mu.Unlock()
	cb.signal()
}

// pushFunc queues f, to run in order with the errors; after close it is
// dropped.
func (cb *callbacks) pushFunc(f func()) {
	cb.mu.Lock()
	if !cb.closed {
		cb.queue = append(cb.queue, callback{fn: f})
	}
	cb.mu.Unlock()
	cb.signal()
}

// close lets run return once the queue is empty.
func (cb *callbacks) close() {
	cb.mu.Lock()
	cb.closed = true
	cb.mu.Unlock()
	cb.signal()
}

func (cb *callbacks) signal() {
	select {
	case cb.wake <- struct{}{}:
	default:
	}
}

// run calls f for every queued error until close.
func (cb *callbacks) run(f func(*Subscription, error)) {
	for range cb.wake {
		for {
			cb.mu.Lock()
			q, closed := cb.queue, cb.closed
			cb.queue = nil
			cb.mu.Unlock()
			for _, c := range q {
				if c.fn != nil {
					c.fn()
				} else {
					f(c.sub, c.err)
				}
			}
			if len(q) == 0 {
				if closed {
					return
				}
				break
			}
		}
	}
}
