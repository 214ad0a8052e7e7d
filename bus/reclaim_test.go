package bus

import (
	"runtime"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// A publisher that sends one large message nobody takes and then idles:
// once the broker has given back its charge it must not keep the message's
// memory either. It did: the Reader's frame kept the pieces until the
// publisher's next frame, uncharged, and a reclaim asked for when the
// charge fell found them still live.
func TestLargeFrameNotKeptAfterRouting(t *testing.T) {
	srv, path := testBroker(t, nil)
	pub := connectRaw(t, path)
	base := srv.Stats().Memory
	const size = 32 << 20
	// With an id, so that the broker answers it with a receipt once it
	// is routed (to nobody) and its charge given back, and the publisher
	// sends nothing after it.
	h := wire.Header{Op: wire.OpPub, ID: 7, TopicLen: 3, PayloadLen: size}
	pub.send(append(wire.AppendFrameHeader(nil, &h), "big"...))
	zero := make([]byte, 1<<20)
	for range size / len(zero) {
		pub.send(zero)
	}
	if f := pub.next(); f.Op != wire.OpReceipt || f.ID != 7 {
		t.Fatalf("got %v %d; want the receipt for 7", f.Op, f.ID)
	}
	// The input charge is given back before the receipt is queued; the
	// receipt's own output grant only once the writer has written it,
	// which may be after the publisher has read it.
	waitFor(t, "the broker to hold no more than before the message", func() bool { return srv.Stats().Memory <= base })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("live heap with the publisher idle: %.1f MiB", float64(ms.HeapAlloc)/(1<<20))
	if ms.HeapAlloc > size/2 {
		t.Errorf("%.1f MiB of heap live after a %d MiB message nobody took was routed: the broker keeps it",
			float64(ms.HeapAlloc)/(1<<20), size>>20)
	}
}

// The memory of a large message shared by several queues is free only
// when the last lets go: that, and not the first queue's charge falling,
// is when the reclaimer is asked to run.
func TestReclaimAskedWhenSharedBodyFreed(t *testing.T) {
	l := &ledger{reclaim: make(chan struct{}, 1)}
	pieces := make([][]byte, reclaimStep/wire.ChunkSize)
	for i := range pieces {
		pieces[i] = make([]byte, wire.ChunkSize)
	}
	b := newLargeBody(l, pieces)
	b.ref()
	b.ref() // three queues
	for range 2 {
		b.Release()
		select {
		case <-l.reclaim:
			t.Fatal("reclaim asked for while a queue still holds the message")
		default:
		}
	}
	b.Release()
	select {
	case <-l.reclaim:
	default:
		t.Fatal("reclaim not asked for when the last queue let go of 64 MiB")
	}
	if b.pieces != nil {
		t.Error("the released body still refers to its pieces")
	}
}
