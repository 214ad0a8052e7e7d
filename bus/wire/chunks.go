package wire

import "sync"

// ChunkSize is the size of the buffers output is packed into (Outbox) and
// large frames are read in (Reader.SetLargeFrames). A queue grows a chunk
// at a time, and a chunk written or released goes back to a free list
// shared by all connections, so a backlog costs what it holds (no doubling
// copies of one growing buffer), an idle connection holds nothing, and
// steady traffic reuses memory that is already mapped.
const ChunkSize = 64 << 10

// maxFreeChunks bounds the free list: 4 MiB of chunks kept, already
// touched, for the next bursts. A fresh page costs a fault, and on a
// virtual machine a fault costs about 13 µs: measured, a MiB of fresh
// queue cost about 3 ms, and a 64 KiB message allocated per publish cost
// pub/sub of 64 KiB messages more than half its throughput. What comes back
// beyond the bound is left to the collector, so a large backlog that drains
// returns its memory.
const maxFreeChunks = 64

// freeChunks are empty chunks. A plain list rather than a sync.Pool: a
// pool empties itself at every collection, and at random under the race
// detector.
var freeChunks struct {
	mu   sync.Mutex
	list [][]byte
}

// getChunk returns an empty chunk of capacity ChunkSize.
func getChunk() []byte {
	freeChunks.mu.Lock()
	if n := len(freeChunks.list); n > 0 {
		b := freeChunks.list[n-1]
		freeChunks.list[n-1] = nil
		freeChunks.list = freeChunks.list[:n-1]
		freeChunks.mu.Unlock()
		return b
	}
	freeChunks.mu.Unlock()
	return make([]byte, 0, ChunkSize)
}

// putChunk gives a chunk back for reuse; anything that is not a whole
// chunk, and chunks beyond the bound, are left to the collector.
func putChunk(b []byte) {
	if cap(b) != ChunkSize {
		return
	}
	b = b[:0:ChunkSize]
	freeChunks.mu.Lock()
	if len(freeChunks.list) < maxFreeChunks {
		freeChunks.list = append(freeChunks.list, b)
	}
	freeChunks.mu.Unlock()
}

// PutPieces gives back the pieces of a large frame's Body once nothing
// refers to them any more: the chunks among them are reused.
func PutPieces(pieces [][]byte) {
	for _, p := range pieces {
		putChunk(p)
	}
}

// DropFreeChunks empties the free list of chunks, so that a collection can
// return their memory to the system.
func DropFreeChunks() {
	freeChunks.mu.Lock()
	clear(freeChunks.list)
	freeChunks.list = freeChunks.list[:0]
	freeChunks.mu.Unlock()
}
