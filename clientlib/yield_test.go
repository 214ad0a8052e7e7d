package clientlib

import (
	"runtime"
	"testing"
	"time"
)

// TestDrainWithBacklogBeyondYield drains a subscription whose handler is
// far more than yieldAt messages behind, on a single P, so that the reader
// yields on every batch and on the PONG that ends Drain's barrier: every
// message still reaches the handler, in order, before Drain returns.
func TestDrainWithBacklogBeyondYield(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	path, _ := startBus(t)
	sub := connect(t, path)
	pub := connect(t, path)
	const n = 20 * yieldAt
	release := make(chan struct{})
	got := 0
	inOrder := true
	s, err := sub.Subscribe("y", func(m *Msg) {
		if got == 0 {
			<-release
		}
		if int(m.Data[0])|int(m.Data[1])<<8|int(m.Data[2])<<16 != got {
			inOrder = false
		}
		got++
	}, ReuseMessages())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	for i := range n {
		if err := pub.Publish("y", []byte{byte(i), byte(i >> 8), byte(i >> 16)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, pub)
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	if err := s.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got != n || !inOrder {
		t.Fatalf("Drain returned after %d of %d messages (in order: %t)", got, n, inOrder)
	}
}
