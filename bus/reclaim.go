package bus

import (
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/busd/busd/bus/wire"
)

// The Go runtime keeps memory the broker has freed for a while before it
// gives it back to the system, so after a large backlog is gone (a slow
// consumer closed, say) the process would stay big. With
// Config.ReclaimMemory the broker asks the runtime to return it, each time
// what it holds has fallen by reclaimStep since the last time, and at most
// once per reclaimEvery: a forced collection is cheap for the broker's
// small heap, but not free.
const (
	reclaimStep  = 64 << 20
	reclaimEvery = time.Second
)

// noteMemoryLocked follows the memory pool's use as it falls, under the
// ledger's lock (takeNowLocked follows it as it rises), and signals the
// reclaimer once it has fallen by reclaimStep.
func (l *ledger) noteMemoryLocked() {
	used := l.pools[poolMemory].used
	if l.reclaim != nil && l.peak-used >= reclaimStep {
		l.peak = used
		select {
		case l.reclaim <- struct{}{}:
		default:
		}
	}
}

// noteFreed follows the memory of large frames, which a reclaim can return
// only once the last queue that shares it lets go (largeBody.Release): the
// memory pool falls by a frame's size for each queue it leaves, and the
// first falls come while the others still hold it, the last may be less
// than its size (what the socket already took is no longer charged). So
// the reclaimer is also signalled once reclaimStep of large frames'
// pieces has been freed since, after the last reference to them is gone.
func (l *ledger) noteFreed(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.large -= n
	if l.reclaim == nil {
		return
	}
	if l.freed += n; l.freed >= reclaimStep {
		l.freed = 0
		select {
		case l.reclaim <- struct{}{}:
		default: // a reclaim is due: it runs after this
		}
	}
}

// reclaimLoop returns freed memory to the system when noteMemoryLocked or
// noteFreed asks, until quit is closed. It logs each time it has, with
// what the broker held then (its memory budget's use, and the large
// frames among it): one with no large frame held has returned theirs.
func reclaimLoop(l *ledger, log *slog.Logger, quit <-chan struct{}) {
	var last time.Time
	for {
		select {
		case <-l.reclaim:
		case <-quit:
			return
		}
		if wait := reclaimEvery - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-quit:
				t.Stop()
				return
			}
		}
		wire.DropFreeChunks()
		l.mu.Lock()
		held, large := l.pools[poolMemory].used, l.large
		l.mu.Unlock()
		debug.FreeOSMemory() // after reading large: what it says was freed, this collection frees
		last = time.Now()
		log.Debug("returned freed memory to the system", "held", held, "large_frames", large)
	}
}
