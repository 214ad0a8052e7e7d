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
// Descriptors to close are queued and the queue is handed to a worker at
// the end of the read batch or write that released them (flush), a few
// dozen at a time: waking a goroutine for every message that carries a
// descriptor cost fd-per-msg a fifth of its throughput. A connection's
// socket (do) is handed over at once.
//
// One worker runs for the server's life. When work is handed over while
// every worker is inside a close, another starts, up to maxClosers; the
// extra ones leave when the queue is empty. Descriptors waiting here stay
// in the broker's descriptor pool until they are closed, so a pile-up
// shows as a full pool (refused descriptors), never as a process out of
// descriptors.
type closer struct {
	led *ledger

	mu       sync.Mutex
	queue    []closeJob
	workers  int
	busy     int           // workers closing jobs now
	idle     chan struct{} // closed when the queue is empty and no close is under way; nil otherwise
	wake     chan struct{} // capacity 1: there is work
	quit     chan struct{}
	quitOnce sync.Once
}

type closeJob struct {
	fds     []int
	owner   *account // whose share of the descriptor pool they take; nil for none
	payload int64    // bytes of owner's held payloads (kFDPayload) they keep alive
	fn      func()   // or a close to run: a connection's socket
}

const (
	maxClosers = 8  // goroutines closing descriptors at once, at most
	closeBatch = 64 // jobs a worker takes at a time, and what wakes one early
)

func newCloser(led *ledger) *closer {
	c := &closer{led: led, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	c.workers = 1
	go c.run(true)
	return c
}

// close queues fds to be closed, and their pool charge given back to
// owner, by the next flush. It never blocks.
func (c *closer) close(fds []int, owner *account) { c.closePayload(fds, owner, 0) }

// closePayload is close for descriptors that keep payload bytes of
// owner's held payloads alive: given back once they are closed.
func (c *closer) closePayload(fds []int, owner *account, payload int64) {
	if len(fds) > 0 {
		c.add(closeJob{fds: fds, owner: owner, payload: payload}, false)
	}
}

// do queues fn, a close that may block (closing a Unix socket whose
// receive queue holds passed descriptors closes those too, and one of them
// may be a lingering TCP socket), and hands it over at once. It never
// blocks.
func (c *closer) do(fn func()) { c.add(closeJob{fn: fn}, true) }

func (c *closer) add(job closeJob, now bool) {
	c.mu.Lock()
	c.queue = append(c.queue, job)
	if now || len(c.queue) >= closeBatch {
		c.signalLocked()
	}
	c.mu.Unlock()
}

// flush hands what is queued to a worker.
func (c *closer) flush() {
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.signalLocked()
	}
	c.mu.Unlock()
}

// signalLocked wakes a worker, starting another if every one is inside a
// close (or none runs, after drain).
func (c *closer) signalLocked() {
	if c.busy == c.workers && c.workers < maxClosers {
		c.workers++
		go c.run(false)
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run closes queued descriptors, closeBatch jobs at a time; the main
// worker waits for more, the others return when the queue is empty.
func (c *closer) run(main bool) {
	var jobs []closeJob
	given := map[*account]int64{}
	payloads := map[*account]int64{}
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
		n := min(len(c.queue), closeBatch)
		jobs = append(jobs[:0], c.queue[:n]...)
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		c.busy++
		c.mu.Unlock()
		for _, job := range jobs {
			for _, fd := range job.fds {
				unix.Close(fd)
			}
			if job.fn != nil {
				job.fn()
			}
			if job.owner != nil {
				given[job.owner] += int64(len(job.fds))
				if job.payload != 0 {
					payloads[job.owner] += job.payload
				}
			}
		}
		for owner, n := range given {
			c.led.give(owner, poolFDs, n)
		}
		for owner, n := range payloads {
			c.led.uncharge(owner, kFDPayload, n)
		}
		clear(given)
		clear(payloads)
		clear(jobs)
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
		if len(c.queue) > 0 {
			c.signalLocked()
		}
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
