package bus

import (
	"testing"

	"github.com/busd/busd/bus/wire"
)

// about checks which frame an ERR names (PROTOCOL.md section 5): seq the
// frame's number, HELLO being 1, and op its op; 0 and 0 for none.
func about(t testing.TB, e wire.Error, seq uint64, op wire.Op) {
	t.Helper()
	if e.Seq != seq || e.Op != op {
		t.Errorf("ERR %v names frame %d op %d; want frame %d op %d", e.Code, e.Seq, e.Op, seq, op)
	}
}

// An error of the read itself, here the user's budget refusing the first
// piece of a large frame, names the frame being read and no op, although
// its header has been read.
func TestReadErrorNamesTheFrameBeingRead(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.Input = connMemory + 1<<10 })
	c := connectRaw(t, path)
	c.sync() // frames 2 and 3: a PING, and a PUB for nobody
	c.pub("nobody", "x")
	h := wire.Header{Op: wire.OpPub, TopicLen: 3, PayloadLen: 1 << 20}
	c.send(append(wire.AppendFrameHeader(nil, &h), "big"...))
	about(t, c.expectErr(wire.CodeBudget, "budget"), 4, 0)
	c.expectClosed()
}
