package clientlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/unixsock/memfd"
)

// settled waits until pp's refill goroutine has nothing left to do.
func settled(t testing.TB, pp *payloadPool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // watchdog
	for {
		pp.mu.Lock()
		running := pp.running
		pp.mu.Unlock()
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the payload pool is still preparing after 10s")
		}
		time.Sleep(time.Millisecond) // nothing to wait on: it exits by itself
	}
}

// readyOf says how many memfds pp has ready for payloads of size bytes,
// and how many bytes it holds in all.
func readyOf(pp *payloadPool, size int) (ready, held int) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if cl := pp.classes[payloadClass(size)]; cl != nil {
		ready = len(cl.ready)
	}
	return ready, pp.held
}

func TestPayloadClass(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 4097, 8 * 4096, 8*4096 + 1, 100_000, 1 << 20, 1<<20 + 1, 3 << 20, 64 << 20, 64<<20 - 1, 1 << 30} {
		c := payloadClass(size)
		if c < size || c%pageSize != 0 || c < pageSize {
			t.Errorf("payloadClass(%d) = %d: not whole pages holding it", size, c)
		}
		if over := c - max(size, pageSize); over >= pageSize && over > size/8 {
			t.Errorf("payloadClass(%d) = %d: %d bytes over, more than an eighth", size, c, over)
		}
	}
	if payloadClass(1<<20+1) != payloadClass(1<<20+5000) {
		t.Errorf("sizes 4 KiB apart around 1 MiB fall in different classes")
	}
}

// A payload is zero when made, holds what was written once sealed, is a
// memfd with every seal of exactly its size, and the pool prepares the
// next one of its class in the background, up to two.
func TestPayloadWriteSeal(t *testing.T) {
	pp := newPayloadPool(PayloadPoolBytes, time.Minute)
	for i, size := range []int{0, 1, 5000, 1<<20 + 3} {
		p, err := pp.get(size)
		if err != nil {
			t.Fatal(err)
		}
		b := p.Bytes()
		if len(b) != size || p.Size() != size {
			t.Fatalf("size %d: Bytes has %d, Size %d", size, len(b), p.Size())
		}
		if !bytes.Equal(b, make([]byte, size)) {
			t.Fatalf("size %d: a new payload is not all zero", size)
		}
		for j := range b {
			b[j] = byte(j*7 + i)
		}
		want := bytes.Clone(b)
		f, err := p.Seal()
		if err != nil {
			t.Fatal(err)
		}
		if p.Bytes() != nil || p.Close() != nil {
			t.Errorf("size %d: after Seal, Bytes or Close did something", size)
		}
		got, err := memfd.ReadPayload(f, int64(size)) // checks the seals and the size
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		f.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: the sealed memfd does not hold what was written", size)
		}
		if _, err := p.Seal(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("second Seal: %v; want os.ErrClosed", err)
		}
		settled(t, pp)
		if ready, _ := readyOf(pp, size); ready != payloadPoolPerClass {
			t.Errorf("size %d: %d ready after a get; want %d", size, ready, payloadPoolPerClass)
		}
	}
	// The next get of a class takes a ready one, which is zero too.
	before, _ := readyOf(pp, 5000)
	p, err := pp.get(5000)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := readyOf(pp, 5000); after != before-1 {
		t.Errorf("get took no ready memfd: %d ready before, %d after", before, after)
	}
	if !bytes.Equal(p.Bytes(), make([]byte, 5000)) {
		t.Errorf("a pooled payload is not all zero")
	}
	if err := p.Close(); err != nil || p.Bytes() != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := p.Seal(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Seal after Close: %v; want os.ErrClosed", err)
	}
	settled(t, pp)
	drain(pp)
}

// drain releases everything pp holds, as its idle timer would.
func drain(pp *payloadPool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for capacity, cl := range pp.classes {
		pp.dropLocked(capacity, cl)
	}
}

// The pool holds at most its limit, making room for the class used last
// by releasing the class used longest ago; a payload over half the limit
// is never pooled; a class unused for the idle time is released.
func TestPayloadPoolBounds(t *testing.T) {
	const limit = 1 << 20
	pp := newPayloadPool(limit, 50*time.Millisecond)
	t.Cleanup(func() { settled(t, pp); drain(pp) }) // none of its memfds may close during another test's count
	fdsBefore, _ := payloadResources(t)
	use := func(size int) {
		t.Helper()
		p, err := pp.get(size)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		settled(t, pp)
		if _, held := readyOf(pp, size); held > limit {
			t.Fatalf("the pool holds %d bytes; its limit is %d", held, limit)
		}
	}
	use(256 << 10)
	if ready, held := readyOf(pp, 256<<10); ready != 2 || held != 512<<10 {
		t.Fatalf("after one 256 KiB payload: %d ready, %d bytes held; want 2, 512 KiB", ready, held)
	}
	use(448 << 10) // two of 448 KiB do not fit beside: the 256 KiB go
	if ready, held := readyOf(pp, 448<<10); ready != 2 || held != 896<<10 {
		t.Errorf("after a 448 KiB payload: %d ready, %d bytes held; want 2, 896 KiB", ready, held)
	}
	if ready, _ := readyOf(pp, 256<<10); ready != 0 {
		t.Errorf("%d of 256 KiB still ready; want them released for the newer class", ready)
	}
	use(limit/2 + 1) // too large to pool
	p, err := pp.get(limit/2 + 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Seal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memfd.ReadPayload(f, limit/2+1); err != nil {
		t.Errorf("a payload too large to pool, sealed: %v", err)
	}
	f.Close()
	if ready, _ := readyOf(pp, limit/2+1); ready != 0 {
		t.Errorf("%d ready of a class over half the limit; want none", ready)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, held := readyOf(pp, 0); held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pool still holds memfds 10s after their last use")
		}
		time.Sleep(10 * time.Millisecond) // the idle timer runs on its own
	}
	if fds, memfds := payloadResources(t); fds != fdsBefore || memfds != 0 {
		t.Errorf("after the release: %d descriptors (%d before), %d memfd mappings", fds, fdsBefore, memfds)
	}
}

// payloadResources counts this process's descriptors and its mappings of memfds.
func payloadResources(t testing.TB) (fds, memfdMaps int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents), bytes.Count(maps, []byte("/memfd:busd-payload"))
}

// BenchmarkPayloadPublisher is the publisher's cost per payload, from
// having no payload to holding a sealed memfd ready to publish, for the
// ways to get there. pooled: NewPayload with the pool warm (the timer
// stops while the pool prepares the next one), copy the payload in, Seal.
// pooled-busy: the same back to back, so the pool never catches up and
// NewPayload prepares on the caller's path. fresh: memfd.New (nothing
// faulted in beforehand), copy in, Seal. reused-slice: copy the payload
// into a reused []byte, then memfd.FromBytes, what Publish does with a
// large one (pwrite(2) into a new memfd). pool-cost: what preparing one
// memfd costs the pool's goroutine. The copy stands for the producer
// writing its payload, the same in each. Closing the sealed memfd (which
// frees its pages when nobody else holds it) is left out: once published,
// the broker or a receiver holds the last reference. Run with
//
//	go test -run '^$' -bench PayloadPublisher -benchtime 20x -count 3 ./clientlib/
func BenchmarkPayloadPublisher(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		src := make([]byte, size)
		for i := range src {
			src[i] = byte(i*7 + i>>12)
		}
		name := fmt.Sprintf("%dMiB", size>>20)
		b.Run("pooled/"+name, func(b *testing.B) { benchPooled(b, src, true) })
		b.Run("pooled-busy/"+name, func(b *testing.B) { benchPooled(b, src, false) })
		b.Run("fresh/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				w, err := memfd.New(size)
				if err != nil {
					b.Fatal(err)
				}
				copy(w.Bytes(), src)
				f, err := w.Seal()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				f.Close()
				b.StartTimer()
			}
		})
		b.Run("reused-slice/"+name, func(b *testing.B) {
			buf := bytes.Clone(src) // touched once, reused
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(buf, src)
				f, err := memfd.FromBytes(buf)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				f.Close()
				b.StartTimer()
			}
		})
		b.Run("pool-cost/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				p, err := prepare(payloadClass(size))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				p.Close()
				b.StartTimer()
			}
		})
	}
}

// benchPooled times NewPayload's path through a pool, warm (waiting for
// its refill off the clock) or not.
func benchPooled(b *testing.B, src []byte, warm bool) {
	pp := newPayloadPool(PayloadPoolBytes, time.Minute)
	defer drain(pp)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if warm {
			b.StopTimer()
			settled(b, pp)
			b.StartTimer()
		}
		p, err := pp.get(len(src))
		if err != nil {
			b.Fatal(err)
		}
		copy(p.Bytes(), src)
		f, err := p.Seal()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		b.StartTimer()
	}
	b.StopTimer()
	settled(b, pp)
}

// A payload written in place reaches a subscriber byte for byte, as Data
// or, with PayloadFiles, as the memfd itself; the Conn checks the size
// against the broker's max_fd_payload before anything is prepared.
func TestNewPayloadPublished(t *testing.T) {
	path, _ := startBusWith(t, func(cfg *bus.Config) { cfg.MaxFDPayload = 8 << 20 })
	c := connect(t, path)
	data, err := c.SubscribeSync("big.data")
	if err != nil {
		t.Fatal(err)
	}
	files, err := c.SubscribeSync("big.>", PayloadFiles())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	if got := c.MaxFDPayload(); got != 8<<20 {
		t.Errorf("MaxFDPayload() = %d; want the 8 MiB the broker announced", got)
	}
	const size = 3<<20 + 17
	p, err := c.NewPayload(size)
	if err != nil {
		t.Fatal(err)
	}
	b := p.Bytes()
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	want := bytes.Clone(b)
	f, err := p.Seal()
	if err != nil {
		t.Fatal(err)
	}
	err = c.PublishMsg(&Msg{Topic: "big.data", PayloadFile: f})
	f.Close() // the connection has its own copy of the descriptor
	if err != nil {
		t.Fatal(err)
	}
	if m := next(t, data); !bytes.Equal(m.Data, want) {
		t.Errorf("Data of %d bytes; want the %d written in place", len(m.Data), size)
	}
	m := next(t, files)
	defer m.CloseFiles()
	if m.PayloadFile == nil {
		t.Fatal("PayloadFiles subscription got no PayloadFile")
	}
	got, err := memfd.ReadPayload(m.PayloadFile, size)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("PayloadFile: %d bytes, %v; want the %d written in place", len(got), err, size)
	}

	if _, err := c.NewPayload(8<<20 + 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("NewPayload over max_fd_payload: %v; want ErrTooLarge", err)
	}
	c.Close()
	if _, err := c.NewPayload(10); !errors.Is(err, ErrClosed) {
		t.Errorf("NewPayload on a closed Conn: %v; want ErrClosed", err)
	}

	path, _ = startBusWith(t, func(cfg *bus.Config) { cfg.MaxFDPayload = 0 })
	if _, err := connect(t, path).NewPayload(10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("NewPayload from a broker that takes no memfds: %v; want ErrTooLarge", err)
	}
	// What the pool prepared meanwhile, once it has stopped preparing (a
	// refill that finished after the drain would leave memfds that its
	// idle timer closes later, in the middle of another test's count of
	// open descriptors): the leak checks count memfds.
	settled(t, payloads)
	drain(payloads)
}

// BenchmarkPayloadPublish is BenchmarkPayloadPublisher's pooled and
// reused-slice cases carried on to the end: published to a real broker
// (in this process, no subscriber) and flushed, so each op includes
// the descriptor's trip and the broker's checks of it. Run with
//
//	go test -run '^$' -bench PayloadPublish$ -benchtime 10x -count 3 ./clientlib/
func BenchmarkPayloadPublish(b *testing.B) {
	dir, err := os.MkdirTemp("", "clb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := bus.NewServer(bus.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	l, err := bus.Listen(dir + "/d/b.sock")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	defer srv.Shutdown(context.Background())
	c, err := Connect(context.Background(), WithSocket(dir+"/d/b.sock"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, size := range []int{1 << 20, 64 << 20} {
		src := make([]byte, size)
		for i := range src {
			src[i] = byte(i*7 + i>>12)
		}
		name := fmt.Sprintf("%dMiB", size>>20)
		b.Run("pooled/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				b.StopTimer()
				settled(b, payloads)
				b.StartTimer()
				p, err := c.NewPayload(size)
				if err != nil {
					b.Fatal(err)
				}
				copy(p.Bytes(), src)
				f, err := p.Seal()
				if err != nil {
					b.Fatal(err)
				}
				err = c.PublishMsg(&Msg{Topic: "bench.big", PayloadFile: f})
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			settled(b, payloads)
			drain(payloads)
		})
		b.Run("reused-slice/"+name, func(b *testing.B) {
			buf := bytes.Clone(src)
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(buf, src)
				if err := c.Publish("bench.big", buf); err != nil {
					b.Fatal(err)
				}
				if err := c.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
