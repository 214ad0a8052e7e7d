package unixsock

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TryAccept takes the connections waiting in the accept queue, in the order
// they connected and with their peers' credentials, and returns nil without
// waiting once the queue is empty; a closed listener gives net.ErrClosed.
func TestTryAccept(t *testing.T) {
	checkFDLeaks(t)
	l := listenT(t, tempSockPath(t, "t.sock"))
	if l.Activated() {
		t.Error("a listener made by Listen says it was activated")
	}
	if c, err := l.TryAccept(); c != nil || err != nil {
		t.Fatalf("empty queue: TryAccept = %v, %v; want nil, nil", c, err)
	}
	const n = 3
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range n {
		c, err := Dial(ctx, l.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	me := ownCred(t, os.Getpid())
	for i := range n {
		c, err := l.TryAccept()
		if c == nil || err != nil {
			t.Fatalf("connection %d: TryAccept = %v, %v; want it", i, c, err)
		}
		t.Cleanup(func() { c.Close() })
		if !sameCred(c.Peer(), me) {
			t.Errorf("connection %d: peer %+v; want %+v", i, c.Peer(), me)
		}
		if got := c.LocalAddr().String(); got != l.Path() {
			t.Errorf("connection %d: LocalAddr = %q; want %q", i, got, l.Path())
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil || b[0] != byte(i) {
			t.Fatalf("connection %d read %v, %v; want the byte %d its client sent", i, b, err, i)
		}
	}
	if c, err := l.TryAccept(); c != nil || err != nil {
		t.Fatalf("drained queue: TryAccept = %v, %v; want nil, nil", c, err)
	}
	l.Close()
	if c, err := l.TryAccept(); c != nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: TryAccept = %v, %v; want net.ErrClosed", c, err)
	}
}
