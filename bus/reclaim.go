package bus

import (
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

// reclaimLoop returns freed memory to the system when noteMemoryLocked
// asks, until quit is closed.
func reclaimLoop(ask <-chan struct{}, quit <-chan struct{}) {
	var last time.Time
	for {
		select {
		case <-ask:
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
		debug.FreeOSMemory()
		last = time.Now()
	}
}
