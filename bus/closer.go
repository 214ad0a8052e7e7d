package bus

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"
)

// closer closes descriptors the broker is done with, on goroutines of its
// own, so that nothing that routes, writes or shuts down ever waits for
// close(2). Closing a passed TCP socket that has SO_LINGER set and a full
// send queue blocks for the linger time; closed inline, one such socket
// froze every publisher routing to its holder.
//
// One worker runs for the server's life. When jobs pile up behind a
// worker that is stuck in a close, another starts, up to maxClosers; the
// extra ones leave when the queue is empty. Descriptors waiting here stay
// in the broker's descriptor pool until they are closed, so a pile-up
// shows as a full pool (refused descriptors), never as a process out of
// descriptors.
type closer struct {
	led *ledger

	mu       sync.Mutex
	queue    []closeJob
	workers  int
	busy     int           // workers closing a job now
	idle     chan struct{} // closed when the queue is empty and no close is under way; nil otherwise
	wake     chan struct{} // capacity 1: the main worker has work
	quit     chan struct{}
	quitOnce sync.Once
}

type closeJob struct {
	fds   []int
	owner *account // whose share of the descriptor pool they take; nil for none
	fn    func()   // or a close to run: a connection's socket
}

// maxClosers bounds the goroutines closing descriptors at once.
const maxClosers = 8

func newCloser(led *ledger) *closer {
	c := &closer{led: led, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	c.workers = 1
	go c.run(true)
	return c
}

// close queues fds to be closed and their pool charge given back to
// owner. It never blocks.
func (c *closer) close(fds []int, owner *account) {
	if len(fds) > 0 {
		c.add(closeJob{fds: fds, owner: owner})
	}
}

// do queues fn, a close that may block: closing a Unix socket whose
// receive queue holds passed descriptors closes those too, and one of them
// may be a lingering TCP socket. It never blocks.
func (c *closer) do(fn func()) { c.add(closeJob{fn: fn}) }

func (c *closer) add(job closeJob) {
	c.mu.Lock()
	c.queue = append(c.queue, job)
	// Another worker if none runs (after drain), or if the others are
	// busy: the job waits behind another.
	extra := c.workers == 0 || len(c.queue) > 1 && c.workers < maxClosers
	if extra {
		c.workers++
	}
	c.mu.Unlock()
	if extra {
		go c.run(false)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run closes queued descriptors; the main worker waits for more, the
// others return when the queue is empty.
func (c *closer) run(main bool) {
	c.mu.Lock()
	for {
		if len(c.queue) == 0 {
			if c.idle != nil && c.busy == 0 {
				close(c.idle)
				c.idle = nil
			}
			if !main {
				c.workers--
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.quit:
				main = false // finish what was queued meanwhile, then leave
			}
			c.mu.Lock()
			continue
		}
		job := c.queue[0]
		c.queue[0] = closeJob{}
		c.queue = c.queue[1:]
		c.busy++
		c.mu.Unlock()
		for _, fd := range job.fds {
			unix.Close(fd)
		}
		if job.fn != nil {
			job.fn()
		}
		if job.owner != nil {
			c.led.give(job.owner, poolFDs, int64(len(job.fds)))
		}
		c.mu.Lock()
		c.busy--
	}
}

// drain waits, as waitIdle, and stops the main worker. Descriptors still
// queued when ctx ends are closed by the workers that remain.
func (c *closer) drain(ctx context.Context) error {
	defer c.quitOnce.Do(func() { close(c.quit) })
	return c.waitIdle(ctx)
}

// waitIdle waits until every queued descriptor is closed, or ctx ends.
func (c *closer) waitIdle(ctx context.Context) error {
	c.mu.Lock()
	var idle chan struct{}
	if len(c.queue) > 0 || c.busy > 0 {
		if c.idle == nil {
			c.idle = make(chan struct{})
		}
		idle = c.idle
	}
	c.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
