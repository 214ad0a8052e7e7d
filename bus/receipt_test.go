package bus

import (
	"testing"

	"github.com/busd/busd/bus/wire"
)

// pubWithID sends a PUB that asks for a receipt.
func (c *rawClient) pubWithID(id uint32, topic string, payload []byte) {
	f := wire.AppendPub(nil, topic, "", nil, payload, 0)
	wire.SetID(f, id)
	c.send(f)
}

// expectReceipt reads one frame, which must be the RECEIPT for id.
func (c *rawClient) expectReceipt(id uint32) wire.Receipt {
	c.t.Helper()
	f := c.next()
	if f.Op != wire.OpReceipt || f.ID != id {
		c.t.Fatalf("got %v %d; want RECEIPT %d", f.Op, f.ID, id)
	}
	r, err := wire.DecodeReceipt(f.Payload)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// A PUB with an id gets a RECEIPT counting the subscriptions that got it,
// a queue group once; one nobody takes gets a receipt of nothing; a PUB
// without an id gets none; a refused one gets its ERR, then its receipt.
func TestReceiptCountsWhoGotIt(t *testing.T) {
	_, path := testBroker(t, nil)
	a, b := subscriber(t, path, "news.*"), subscriber(t, path, ">")
	w1, w2 := connectRaw(t, path), connectRaw(t, path)
	for _, w := range []*rawClient{w1, w2} {
		w.sub(1, "news.local", "workers")
		w.sync()
	}
	p := connectRaw(t, path)
	p.pubWithID(5, "news.local", []byte("x"))
	if r := p.expectReceipt(5); r != (wire.Receipt{Delivered: 3}) {
		t.Fatalf("receipt %v; want 3 delivered (two plain, one group), none dropped", r)
	}
	for _, c := range []*rawClient{a, b} {
		if f := c.next(); f.Op != wire.OpMsg || string(f.Payload) != "x" {
			t.Fatalf("subscriber got %v %q", f.Op, f.Payload)
		}
	}
	b.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	b.sync()
	p.pubWithID(6, "weather.local", nil)
	if r := p.expectReceipt(6); r != (wire.Receipt{}) {
		t.Fatalf("receipt %v for a topic nobody subscribes to; want 0 and 0", r)
	}
	p.pub("news.local", "no receipt")
	p.sync() // the PONG comes next: no receipt before it
	p.pubWithID(7, "$SYS.mine", nil)
	p.expectErr(wire.CodeReservedTopic, "$SYS.mine")
	if r := p.expectReceipt(7); r != (wire.Receipt{}) {
		t.Fatalf("receipt %v for a refused PUB; want 0 and 0", r)
	}
}

// A subscription too far behind to take the message is counted as
// dropped, not delivered.
func TestReceiptCountsDrops(t *testing.T) {
	_, path := testBroker(t, smallQueues)
	stopped := connectRaw(t, path)
	stopped.sub(1, "svc", "")
	stopped.sync()
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "svc", 4000, 1024); err != nil { // fills its queue: it never reads
		t.Fatal(err)
	}
	p := connectRaw(t, path)
	p.pubWithID(1, "svc", make([]byte, 4096)) // larger than any room the flood left
	if r := p.expectReceipt(1); r != (wire.Receipt{Dropped: 1}) {
		t.Fatalf("receipt %v; want 0 delivered, 1 dropped", r)
	}
}

// A client that sends PUBs with ids and never reads their receipts is
// paused like one that floods PINGs: the receipts waiting stay bounded.
func TestReceiptFloodIsBounded(t *testing.T) {
	floodUnread(t, 100_000, func(dst []byte, i int) []byte {
		at := len(dst)
		dst = wire.AppendPub(dst, "nobody", "", nil, nil, 0)
		wire.SetID(dst[at:], uint32(i+1))
		return dst
	}, func(c *rawClient, i int) {
		c.expectReceipt(uint32(i + 1))
	})
}
