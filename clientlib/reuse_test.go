package clientlib

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// payloadFor is message i's payload: sizes cycle through inline, buffered
// and larger-than-kept, so a reused buffer must grow, shrink and be skipped.
func payloadFor(i int) []byte {
	size := []int{0, 5, 16, 700, maxLentData, maxLentData + 1, 64 << 10}[i%7]
	return bytes.Repeat([]byte{byte('a' + i%26)}, size)
}

func TestReuseMessagesDeliversEachMessageIntact(t *testing.T) {
	path, _ := startBus(t)
	sub := connect(t, path)
	pub := connect(t, path)
	const n = 3000
	type seen struct {
		m      *Msg
		header Header
	}
	errs := make(chan error, 1)
	done := make(chan struct{})
	var got []seen
	var kept *Msg
	_, err := sub.Subscribe("reuse.>", func(m *Msg) {
		i := len(got)
		want := payloadFor(i)
		if !bytes.Equal(m.Data, want) || m.Topic != fmt.Sprintf("reuse.%d", i%3) || m.Header.Get("i") != fmt.Sprint(i) {
			select {
			case errs <- fmt.Errorf("message %d: topic %q header %v, %d bytes; want %d bytes of %q",
				i, m.Topic, m.Header, len(m.Data), len(want), want[:min(1, len(want))]):
			default:
			}
		}
		if i == 3 {
			kept = m.Clone()
		}
		got = append(got, seen{m, m.Header})
		if len(got) == n {
			close(done)
		}
	}, ReuseMessages())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	for i := range n {
		m := &Msg{Topic: fmt.Sprintf("reuse.%d", i%3), Header: HeaderOf("i", fmt.Sprint(i)), Data: payloadFor(i)}
		if err := pub.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d messages arrived", len(got), n)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	reused := map[*Msg]bool{}
	for i, s := range got {
		reused[s.m] = true
		if s.header.Get("i") != fmt.Sprint(i) { // a Header is the handler's to keep
			t.Fatalf("message %d's header became %v", i, s.header)
		}
	}
	if len(reused) > n/2 {
		t.Fatalf("%d messages came in %d distinct Msgs: not reused", n, len(reused))
	}
	if !bytes.Equal(kept.Data, payloadFor(3)) || kept.Header.Get("i") != "3" || kept.Topic != "reuse.0" {
		t.Fatalf("the clone of message 3 changed: %q %v %q", kept.Data, kept.Header, kept.Topic)
	}
}

func TestReuseMessagesAllocatesNothingPerMessage(t *testing.T) {
	path, _ := startBus(t)
	sub := connect(t, path)
	pub := connect(t, path)
	count := make(chan int, 1)
	received := 0
	if _, err := sub.Subscribe("alloc", func(*Msg) {
		received++
		if received%1000 == 0 {
			count <- received
		}
	}, ReuseMessages()); err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	data := []byte("0123456789abcdef")
	round := func() {
		for range 1000 {
			if err := pub.Publish("alloc", data); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-count:
		case <-time.After(10 * time.Second):
			t.Fatal("a round of 1000 messages did not arrive")
		}
	}
	round() // fills the subscription's store of Msgs
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		round()
	}
	runtime.ReadMemStats(&after)
	// The broker and the publisher run in this process too, and their
	// buffers grow and shrink with each round (about 0.7 MB in all); a Msg
	// per message would add more than 4 MB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 20000*100 {
		t.Fatalf("20000 messages cost %d bytes of allocations in this process", n)
	}
}

// A message without headers, most messages, costs the receiver no
// allocation for them: on a subscription reusing its messages, receiving
// one allocates nothing at all. One with a header allocates the copy the
// handler may keep; that case is measured too, so that a measure that
// could not see an allocation would not pass unnoticed. The broker is the
// test's, writing ready-made frames: a real one's allocations would count.
func TestReceiveWithoutHeaderDoesNotAllocate(t *testing.T) {
	fb := newFakeBus(t)
	c := fb.connect()
	got := make(chan struct{}, 1)
	if _, err := c.Subscribe("alloc.recv", func(*Msg) { got <- struct{}{} }, ReuseMessages()); err != nil {
		t.Fatal(err)
	}
	sid := fb.expect(wire.OpSub).ID
	ctx := testCtx(t)
	receive := func(frame []byte) func() {
		return func() {
			if _, err := fb.sock.Write(frame); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-ctx.Done():
				t.Fatal("the message did not arrive")
			}
		}
	}
	bare := receive(msg(sid, 2, "alloc.recv", nil, "0123456789abcdef"))
	headed := receive(msg(sid, 2, "alloc.recv", wire.AppendField(nil, "k", "v"), "0123456789abcdef"))
	bare() // the subscription's first Msg
	if n := testing.AllocsPerRun(1000, bare); n != 0 {
		t.Errorf("receiving a message without headers: %v allocations; want none", n)
	}
	if n := testing.AllocsPerRun(1000, headed); n != 2 {
		t.Errorf("receiving a message with a header: %v allocations; want 2 (the header's fields and their bytes)", n)
	}
}
