package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// counter is a Releaser that counts its releases.
type counter struct{ n int }

func (c *counter) Release() { c.n++ }

// drain takes everything from o in batches of at most limit bytes and
// returns the bytes in the order a Sender would write them.
func drain(o *Outbox, limit int) []byte {
	var out []byte
	var batch Outbox
	for {
		took, _ := o.TakeInto(&batch, true, limit)
		if !took {
			batch.recycle()
			return out
		}
		for _, s := range batch.segs {
			out = append(out, s.buf...)
		}
	}
}

// Frames of every size, small ones packed into chunks and large ones in
// buffers of their own, come out whole and in order, however small the
// batches.
func TestOutboxKeepsFramesInOrder(t *testing.T) {
	for _, limit := range []int{1, 100, ChunkSize, BatchMax} {
		var o Outbox
		var want []byte
		for i, size := range []int{10, 100, ChunkSize - 30, 5, ChunkSize + 1, 3 * ChunkSize, 1, 0, 7} {
			f := AppendPub(nil, "t", "", nil, bytes.Repeat([]byte{byte(i)}, size), 0)
			o.Append(f)
			want = append(want, f...)
		}
		if o.Len() != len(want) || o.End() != int64(len(want)) {
			t.Fatalf("Len %d End %d; want %d", o.Len(), o.End(), len(want))
		}
		if got := drain(&o, limit); !bytes.Equal(got, want) {
			t.Fatalf("limit %d: the frames came out different (%d bytes, want %d)", limit, len(got), len(want))
		}
		if o.Len() != 0 {
			t.Fatalf("limit %d: %d bytes left", limit, o.Len())
		}
	}
}

// A frame queued by reference goes out with its head, its parts
// uncopied, and its Releaser is released once, after it is written.
func TestOutboxAppendRef(t *testing.T) {
	var o Outbox
	o.Append([]byte("before|"))
	parts := [][]byte{[]byte("one,"), []byte("two,"), []byte("three")}
	rel := &counter{}
	o.Commit(append(o.Reserve(5), "head:"...))
	o.AppendRef(parts, rel)
	o.Append([]byte("|after"))
	got := drain(&o, 1)
	if string(got) != "before|head:one,two,three|after" {
		t.Fatalf("got %q", got)
	}
	if rel.n != 1 {
		t.Fatalf("released %d times; want once", rel.n)
	}
}

// Discard drops what has not started to go out, releasing it, but keeps
// the rest of a frame whose start was already taken, so that the peer
// never reads a frame from its middle.
func TestOutboxDiscardKeepsTheFrameInFlight(t *testing.T) {
	var o Outbox
	fds := &counter{}
	ref, later := &counter{}, &counter{}
	o.Commit(append(o.Reserve(3), "AAA"...))
	o.AppendRef([][]byte{[]byte("bbb"), []byte("ccc")}, ref)
	o.AddFDs([]int{1, 2}, fds)
	o.Append([]byte("DDD"))
	o.Commit(append(o.Reserve(3), "EEE"...))
	o.AppendRef([][]byte{[]byte("fff")}, later)
	var batch Outbox
	if took, _ := o.TakeInto(&batch, true, 1); !took || len(batch.segs) != 1 {
		t.Fatalf("took %v, %d segments; want the first one", took, len(batch.segs))
	}
	n, nfds := o.Discard()
	if n != len("DDDEEEfff") || nfds != 2 || fds.n != 1 || later.n != 1 || ref.n != 0 {
		t.Fatalf("discarded %d bytes, %d fds; releases: fds %d, later %d, in flight %d", n, nfds, fds.n, later.n, ref.n)
	}
	o.Append([]byte("ERR"))
	rest := drain(&o, BatchMax)
	if string(rest) != "bbbcccERR" || ref.n != 1 {
		t.Fatalf("after the discard: %q (in-flight frame released %d times)", rest, ref.n)
	}
}

// The descriptors of frames in one batch go out with as few sendmsg calls
// as the kernel's limit of 253 per call allows, each with or before its
// frame's first byte, so the receiver matches every frame with its own.
func TestSenderSplitsDescriptorsAtTheKernelLimit(t *testing.T) {
	a, b, err := unixsock.Socketpair(unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	o := &owner{}
	s := NewSender(a, o.take, func(n, _ int) { o.sent += n })
	f, _ := os.Open(os.DevNull)
	defer f.Close()
	const frames, each = 6, 100 // 600 descriptors: three calls at least
	var fdsFor [frames][]int
	for i := range frames {
		for range each {
			fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			fdsFor[i] = append(fdsFor[i], fd)
		}
		o.out.AddFDs(fdsFor[i], closer(fdsFor[i]))
		o.out.Append(AppendPub(nil, "f", "", nil, []byte{byte(i)}, each))
	}
	done := make(chan error, 1)
	go func() { done <- s.Flush() }()
	lim := Limits{MaxPayload: 16, MaxFDs: MaxFDsPerFrame}
	r := NewReader(b, &lim)
	for i := range frames {
		fr, err := r.Next(nil)
		if err != nil || fr.Payload[0] != byte(i) {
			t.Fatalf("frame %d: %v", i, err)
		}
		got, err := b.TakeFDs(each)
		if err != nil {
			t.Fatalf("frame %d's descriptors: %v", i, err)
		}
		for _, fd := range got {
			unix.Close(fd)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// closer closes descriptors once released, like the broker's fdSet.
type closer []int

func (c closer) Release() {
	for _, fd := range c {
		unix.Close(fd)
	}
}

// A blocking write cut short by a deadline leaves the rest in the batch;
// the next Flush sends it, so a writer can judge a peer's progress between
// deadlines without losing or repeating a byte.
func TestSenderResumesAfterADeadline(t *testing.T) {
	a, b := smallBufferPair(t)
	o := &owner{}
	s := NewSender(a, o.take, func(n, _ int) { o.sent += n })
	payload := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB into a 4 KiB buffer
	frame := AppendPub(nil, "big", "", nil, payload, 0)
	o.out.Append(frame)
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if err := s.Flush(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush into a full socket: %v; want the deadline", err)
	}
	a.SetWriteDeadline(time.Time{})
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, len(frame))
		io.ReadFull(b, buf)
		got <- buf
	}()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(<-got, frame) || o.sent != len(frame) {
		t.Fatalf("the frame arrived changed (%d bytes accounted, %d sent)", o.sent, len(frame))
	}
}

// A Reader with SetLargeFrames reads a large frame in pieces, asking for
// each before it allocates it, and hands them over as the frame's Body.
func TestReaderReadsLargeFramesInPieces(t *testing.T) {
	a, b := smallBufferPair(t)
	var asked []int
	lim := Limits{MaxPayload: 8 << 20, MaxHeaders: 1 << 10}
	r := NewReader(b, &lim)
	r.SetLargeFrames(1<<20, func(n int) error { asked = append(asked, n); return nil })
	payload := make([]byte, 3<<20+5)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	hdrs := AppendField(nil, "k", "v")
	frame := AppendPub(nil, "big.one", "re.ply", hdrs, payload, 0)
	go a.Write(append(frame, AppendControl(nil, OpPing, 3, nil)...))
	f, err := r.NextRef(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Topic) != "big.one" || string(f.Reply) != "re.ply" || !bytes.Equal(f.Headers, hdrs) || f.Payload != nil {
		t.Fatalf("sections: %q %q %q, payload %d bytes", f.Topic, f.Reply, f.Headers, len(f.Payload))
	}
	body := bytes.Join(f.Body, nil)
	if !bytes.Equal(body, frame[HeaderLen:]) {
		t.Fatal("the pieces are not the frame's body")
	}
	if len(asked) != 4 || asked[0] != 1<<20 || asked[3] != len(frame)-HeaderLen-3<<20 {
		t.Fatalf("pieces asked for: %v", asked)
	}
	if next, err := r.Next(nil); err != nil || next.Op != OpPing || next.ID != 3 || r.Partial() {
		t.Fatalf("the frame after: %v %v (partial %v)", next.Op, err, r.Partial())
	}
}

// A piece the grow function refuses ends the read with its error, before
// the piece is allocated.
func TestReaderStopsWhereGrowRefuses(t *testing.T) {
	a, b := smallBufferPair(t)
	lim := Limits{MaxPayload: 64 << 20}
	r := NewReader(b, &lim)
	refused := Errorf(CodeBudget, "no more")
	grown := 0
	r.SetLargeFrames(1<<20, func(n int) error {
		if grown += n; grown > 2<<20 {
			return refused
		}
		return nil
	})
	frame := AppendPub(nil, "t", "", nil, nil, 0)
	h, _ := DecodeHeader(frame, &lim)
	h.PayloadLen = 64 << 20
	go func() {
		a.Write(append(AppendFrameHeader(nil, &h), "t"...))
		a.Write(make([]byte, 3<<20))
	}()
	if _, err := r.Next(nil); err != refused {
		t.Fatalf("got %v; want grow's error", err)
	}
	if grown != 3<<20 {
		t.Fatalf("asked for %d bytes in all; want the third piece refused", grown)
	}
}

// A frame copied over several chunks is a frame in flight like any other:
// once its start is taken, Discard keeps the rest of it.
func TestOutboxDiscardKeepsACopiedFrameWhole(t *testing.T) {
	var o Outbox
	big := bytes.Repeat([]byte{7}, 3*ChunkSize)
	o.Append(big)
	o.Append([]byte("next"))
	var batch Outbox
	if took, _ := o.TakeInto(&batch, true, 1); !took {
		t.Fatal("took nothing")
	}
	o.Discard()
	o.Append([]byte("ERR"))
	var got []byte
	for _, s := range batch.segs {
		got = append(got, s.buf...)
	}
	got = append(got, drain(&o, BatchMax)...)
	// "next" shares the big frame's last chunk, so it may stay with it.
	if rest := string(got[len(big):]); !bytes.Equal(got[:len(big)], big) || rest != "ERR" && rest != "nextERR" {
		t.Fatalf("after the discard: %d bytes, ending %q", len(got), got[max(0, len(got)-8):])
	}
}
