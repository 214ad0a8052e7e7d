package bus

import (
	"io"
	"runtime"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// Routing a message allocates nothing in the broker: the topic is looked up
// in the cache straight from the read buffer and the MSG is appended to the
// receiver's reused buffer. Counted over the whole process, so the clients'
// own work is inside the bound.
func TestRoutingDoesNotAllocatePerMessage(t *testing.T) {
	_, path := testBroker(t, nil)
	sub := subscriber(t, path, "alloc.>")
	pub := connectRaw(t, path)
	const n = 20000
	var batch []byte
	for range n {
		batch = wire.AppendPub(batch, "alloc.test", "", nil, []byte("0123456789abcdef"), 0)
	}
	msgSize := wire.HeaderLen + wire.OriginLen + len("alloc.test") + 16
	pub.pub("alloc.test", "0123456789abcdef") // warm the cache and the buffers
	io.ReadFull(sub.sock, make([]byte, msgSize))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pub.send(batch)
	buf := make([]byte, n*msgSize)
	if _, err := io.ReadFull(sub.sock, buf); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if mallocs := after.Mallocs - before.Mallocs; mallocs > n/100 {
		t.Fatalf("%d allocations routing %d messages; want well under one per message", mallocs, n)
	}
}
