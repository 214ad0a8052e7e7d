package clientlib

import (
	"fmt"
	"math/bits"
	"os"
	"sync"
	"time"

	"github.com/busd/busd/unixsock/memfd"
	"golang.org/x/sys/unix"
)

// Writing a large payload in place: [Conn.NewPayload] hands out a memfd
// whose writable mapping is already faulted in, the caller produces the
// payload straight into [Payload.Bytes], [Payload.Seal] seals it, and the
// sealed file goes out as [Msg.PayloadFile]: no copy of the bytes on the
// publisher's side after the caller's own writes, none in the broker.
//
// # Cost, measured
//
// Publisher's cost per payload, from nothing to a sealed memfd ready to
// publish, with the payload's bytes written once (payload_pool_test.go,
// BenchmarkPayloadPublisher, -benchtime 10x -count 3, ranges of the runs,
// 2026-12-06, on a 2-vCPU Firecracker VM, Linux 6.18, 4 KiB pages, shmem
// THP off, shared with other builds at the time):
//
//	                                          1 MiB           64 MiB
//	(a) NewPayload, pool warm, write, Seal    0.55-0.63 ms    40-65 ms
//	    same, back to back (pool behind)      0.5-2.0 ms      182-200 ms
//	(b) memfd.New (fresh), write, Seal        3.3-3.7 ms      247-271 ms
//	(c) write a reused []byte, FromBytes      0.2-0.6 ms      21-31 ms
//	    (what Publish does: pwrite(2))
//	the pool's own cost to prepare one       2.3-2.6 ms      141-171 ms
//
// Carried on to the end, published to a broker in the same process and
// flushed (BenchmarkPayloadPublish), (a) takes 2.2-3.2 ms and 60-90 ms,
// (c) 0.33-0.61 ms and 29-75 ms: the pool's refill, started when the
// payload is sealed, competes with the send for the two CPUs.
//
// What they say, on this machine:
//
//   - The first write from user space to each page of a new memfd costs
//     12 to 40 µs here, even after the kernel allocated and mapped it
//     (MAP_POPULATE or MADV_POPULATE_WRITE leave no page fault for the
//     write, yet the write still pays most of it), so a fresh mapping (b)
//     is the slowest way by far. A Payload is therefore prepared the
//     cheapest way measured: mapped with MAP_POPULATE, then one byte of
//     every page written from user space (64 MiB: 130-180 ms, against
//     220-300 ms for the writes alone). On a miss NewPayload does it on
//     the caller's path, which still beats (b).
//   - Even warm, in place (a) is slower here than (c): Seal has to unmap
//     the writable mapping before the kernel lets it add F_SEAL_WRITE, and
//     unmapping 64 MiB of populated pages (page tables and TLB shootdowns
//     across the process's threads) costs 15 to 90 ms in this VM, where
//     pwrite(2) into a new memfd never maps anything.
//   - The pool only moves the preparation, it does not remove it: each
//     payload costs it 2.3 ms of CPU per MiB, and a sealed memfd can never
//     be written again, so nothing can be recycled.
//
// Recommendation: publish a reused []byte with [Conn.Publish]; it is the
// fastest and cheapest way here, and holds no memory between payloads.
// Write in place when the payload is produced into memory anyway (read
// from a device, decoded, computed) and a second buffer of its size is
// not wanted, or when the publisher must not hold its own copy; with the
// pool warm (idle CPU between payloads) it costs the publisher's thread
// about twice the pwrite path and a fifth of a fresh memfd.
//
// # Bounds
//
// The pool holds at most [PayloadPoolBytes] bytes of prepared memfds at
// once for the whole process, at most two per size class (sizes rounded
// up by at most an eighth), and prepares only payloads of at most half of
// it; larger ones are prepared on the caller's path. A size class not
// asked for during five seconds is released. The memory is the publishing
// process's (shmem, charged to its memory cgroup) while the memfds wait,
// and the CPU is its own too, spent by one goroutine that runs only while
// there is something to prepare, after a payload is sealed or discarded.
// At the limit nothing blocks: NewPayload prepares the memfd itself, on
// its caller's path.

// PayloadPoolBytes bounds the bytes of prepared, unused memfds that the
// pool behind [Conn.NewPayload] holds at once for the whole process.
// Payloads over half of it are never pooled.
const PayloadPoolBytes = 128 << 20

const (
	payloadPoolIdle     = 5 * time.Second // a size class unused this long is released
	payloadPoolPerClass = 2               // prepared memfds kept per size class
)

var pageSize = os.Getpagesize()

// Payload is a memfd being written in place, made by [Conn.NewPayload].
// Its methods are not safe for concurrent use.
type Payload struct {
	f    *os.File // nil once sealed or closed
	data []byte   // the writable mapping, capacity bytes; nil after Seal or Close
	size int
	// capacity is the memfd's size: its size class (payloadClass), until
	// Seal truncates it to size.
	capacity int
	pool     *payloadPool // kicked once the payload is sealed or closed; nil if not pooled
}

// NewPayload returns a Payload of size bytes, all zero, to be written in
// place through [Payload.Bytes] and then sent with [Payload.Seal] and
// [Msg.PayloadFile] or discarded with [Payload.Close]. Its pages are
// faulted in already: from the process's pool when one of the size is
// ready, else on this call's path (see the figures above).
//
// The payload goes to the broker in a memfd, so size must be at most the
// broker's max_fd_payload; a larger one, or any when the broker takes no
// payloads in a memfd, is an error matching [ErrTooLarge]. On a closed
// Conn it returns the error the connection ended with.
func (c *Conn) NewPayload(size int) (*Payload, error) {
	select {
	case <-c.quit:
		return nil, c.closedErr()
	default:
	}
	limit := c.MaxFDPayload()
	switch {
	case size < 0:
		return nil, fmt.Errorf("bus: payload of %d bytes: %w", size, unix.EINVAL)
	case limit == 0:
		return nil, fmt.Errorf("%w: payload of %d bytes in a memfd: the bus takes none (max_fd_payload 0)", ErrTooLarge, size)
	case uint64(size) > limit:
		return nil, fmt.Errorf("%w: payload of %d bytes; the bus takes %d in a memfd", ErrTooLarge, size, limit)
	}
	p, err := payloads.get(size)
	if err != nil {
		return nil, fmt.Errorf("bus: payload of %d bytes: %w", size, err)
	}
	return p, nil
}

// MaxFDPayload returns the largest payload, in bytes, that the broker
// takes in a memfd, from its INFO (max_fd_payload); 0 if it takes none.
// A reconnect may change it.
func (c *Conn) MaxFDPayload() uint64 { return c.info.Load().MaxFDPayload }

// Bytes returns the payload's writable memory, len the size asked for.
// It is valid until Seal or Close; using it after that faults.
func (p *Payload) Bytes() []byte {
	if p.data == nil {
		return nil
	}
	return p.data[:p.size:p.size]
}

// Size returns the size the payload was made with.
func (p *Payload) Size() int { return p.size }

// Seal ends the writing: it unmaps the memory, sets the memfd's size to
// the payload's, adds [memfd.RequiredSeals] and returns the memfd, to
// publish as [Msg.PayloadFile] and then close. The connection duplicates
// the descriptor when publishing, so the caller closes it once Publish
// returns (or keeps it to publish again). After Seal the Payload holds
// nothing: Bytes returns nil and Close does nothing.
func (p *Payload) Seal() (*os.File, error) {
	if p.f == nil {
		return nil, fmt.Errorf("bus: seal payload: %w", os.ErrClosed)
	}
	if p.data != nil {
		err := unix.Munmap(p.data)
		p.data = nil
		if err != nil {
			return nil, fmt.Errorf("bus: seal payload: %w", os.NewSyscallError("munmap", err))
		}
	}
	if p.capacity != p.size {
		if err := unix.Ftruncate(int(p.f.Fd()), int64(p.size)); err != nil {
			return nil, fmt.Errorf("bus: seal payload: %w", os.NewSyscallError("ftruncate", err))
		}
		p.capacity = p.size
	}
	if _, err := unix.FcntlInt(p.f.Fd(), unix.F_ADD_SEALS, memfd.RequiredSeals); err != nil {
		return nil, fmt.Errorf("bus: seal payload: %w", os.NewSyscallError("fcntl F_ADD_SEALS", err))
	}
	f := p.f
	p.f = nil
	p.kickPool()
	return f, nil
}

// kickPool has the pool the payload came from prepare its replacement.
func (p *Payload) kickPool() {
	if p.pool != nil {
		p.pool.kick()
		p.pool = nil
	}
}

// Close discards a payload that was not sealed. It does nothing after
// Seal and is idempotent. A discarded memfd is not pooled again.
func (p *Payload) Close() error {
	var err error
	if p.data != nil {
		if e := unix.Munmap(p.data); e != nil {
			err = os.NewSyscallError("munmap", e)
		}
		p.data = nil
	}
	if p.f != nil {
		if e := p.f.Close(); err == nil {
			err = e
		}
		p.f = nil
	}
	p.kickPool()
	if err != nil {
		return fmt.Errorf("bus: close payload: %w", err)
	}
	return nil
}

// payloadClass is the capacity pooled for a payload of size bytes: whole
// pages, rounded up so that it is at most one eighth larger than size,
// so that payloads of sizes close together share prepared memfds.
func payloadClass(size int) int {
	pages := (size + pageSize - 1) / pageSize
	if pages <= 8 {
		return max(pages, 1) * pageSize
	}
	g := 1 << (bits.Len(uint(pages)) - 4) // 8 to 16 steps per power of two
	return (pages + g - 1) / g * g * pageSize
}

// prepare makes a memfd of capacity bytes and maps it writable with every
// page faulted in: MAP_POPULATE, then one write per page (see the figures
// above for why both).
func prepare(capacity int) (*Payload, error) {
	fd, err := unix.MemfdCreate("busd-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:busd-payload")
	if err := unix.Ftruncate(fd, int64(capacity)); err != nil {
		f.Close()
		return nil, os.NewSyscallError("ftruncate", err)
	}
	data, err := unix.Mmap(fd, 0, capacity, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		f.Close()
		return nil, os.NewSyscallError("mmap", err)
	}
	for i := 0; i < len(data); i += pageSize {
		data[i] = 0
	}
	return &Payload{f: f, data: data, size: capacity, capacity: capacity}, nil
}

// payloads is the process's pool of prepared memfds. It is shared by
// every Conn because the memory and the CPU it spends are the process's,
// whichever connection publishes.
var payloads = newPayloadPool(PayloadPoolBytes, payloadPoolIdle)

func newPayloadPool(limit int, idle time.Duration) *payloadPool {
	return &payloadPool{classes: map[int]*payloadClassPool{}, limit: limit, idle: idle}
}

// payloadPool keeps prepared memfds by size class. Its goroutine runs only
// while there is something to prepare, and its timer only while it holds
// something; so an idle process holds nothing after payloadPoolIdle.
type payloadPool struct {
	limit int           // PayloadPoolBytes, but for tests
	idle  time.Duration // payloadPoolIdle, but for tests

	mu      sync.Mutex
	classes map[int]*payloadClassPool
	held    int  // bytes of the ready memfds and of the one being prepared
	running bool // the refill goroutine is running
	timer   *time.Timer
}

type payloadClassPool struct {
	ready   []*Payload
	lastUse time.Time
}

// get returns a prepared Payload of size bytes: a pooled one if ready,
// else one prepared now. Either way the pool prepares another once this
// one is sealed or discarded (Payload.kickPool).
func (pp *payloadPool) get(size int) (*Payload, error) {
	capacity := payloadClass(size)
	if capacity > pp.limit/2 { // never pooled: whole pages, no more
		p, err := prepare(max((size+pageSize-1)/pageSize, 1) * pageSize)
		if p != nil {
			p.size = size
		}
		return p, err
	}
	pp.mu.Lock()
	cl := pp.classes[capacity]
	if cl == nil {
		cl = &payloadClassPool{}
		pp.classes[capacity] = cl
	}
	cl.lastUse = time.Now()
	var p *Payload
	if n := len(cl.ready); n > 0 {
		p = cl.ready[n-1]
		cl.ready[n-1] = nil
		cl.ready = cl.ready[:n-1]
		pp.held -= capacity
	}
	pp.mu.Unlock()
	if p == nil {
		var err error
		if p, err = prepare(capacity); err != nil {
			return nil, err
		}
	}
	p.size = size
	p.pool = pp
	return p, nil
}

// kick starts the refill goroutine unless it runs. Payloads call it
// when sealed or discarded, not when taken: preparing a memfd holds the
// process's mmap lock while it populates, which would stall the caller's
// own munmap in Seal, and competes for the CPU the caller is filling its
// payload with.
func (pp *payloadPool) kick() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if !pp.running && pp.wantedLocked() != 0 {
		pp.running = true
		go pp.refill()
	}
}

// refill prepares memfds, one at a time, while a recently used class has
// fewer than payloadPoolPerClass ready and the bound allows; then it ends.
func (pp *payloadPool) refill() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for {
		capacity := pp.wantedLocked()
		if capacity == 0 {
			pp.running = false
			pp.armLocked()
			return
		}
		pp.held += capacity
		pp.mu.Unlock()
		p, err := prepare(capacity)
		pp.mu.Lock()
		pp.held -= capacity
		if err != nil { // out of memory, say: the callers prepare their own
			pp.running = false
			pp.armLocked()
			return
		}
		if cl := pp.classes[capacity]; cl != nil {
			cl.ready = append(cl.ready, p)
			pp.held += capacity
		} else { // released meanwhile
			p.Close()
		}
	}
}

// wantedLocked returns the class to prepare next, the most recently used
// one short of memfds, making room by releasing the least recently used
// ones of other classes; or 0 if there is none or no room.
func (pp *payloadPool) wantedLocked() int {
	best := 0
	for capacity, cl := range pp.classes {
		if len(cl.ready) < payloadPoolPerClass && (best == 0 || cl.lastUse.After(pp.classes[best].lastUse)) {
			best = capacity
		}
	}
	if best == 0 {
		return 0
	}
	for pp.held+best > pp.limit {
		victim := 0
		for capacity, cl := range pp.classes {
			if capacity != best && len(cl.ready) > 0 && (victim == 0 || cl.lastUse.Before(pp.classes[victim].lastUse)) {
				victim = capacity
			}
		}
		if victim == 0 {
			return 0
		}
		pp.dropLocked(victim, pp.classes[victim])
	}
	return best
}

// dropLocked releases the ready memfds of a class and forgets it.
func (pp *payloadPool) dropLocked(capacity int, cl *payloadClassPool) {
	for _, p := range cl.ready {
		p.Close()
		pp.held -= capacity
	}
	delete(pp.classes, capacity)
}

// armLocked makes sure the idle timer runs while the pool holds anything.
func (pp *payloadPool) armLocked() {
	if len(pp.classes) > 0 && pp.timer == nil {
		pp.timer = time.AfterFunc(pp.idle, pp.releaseIdle)
	}
}

// releaseIdle releases the classes unused for payloadPoolIdle.
func (pp *payloadPool) releaseIdle() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.timer = nil
	for capacity, cl := range pp.classes {
		if time.Since(cl.lastUse) >= pp.idle {
			pp.dropLocked(capacity, cl)
		}
	}
	pp.armLocked()
}
