package memfd

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// Measured figures (median of -count 3), commit d56572e, 2026-12-06, on
// a 2-vCPU VM (Oxide Virtual Turin-like Processor, Linux 6.18, 4 KiB pages,
// shmem THP off), with the command
//
//	go test -run '^$' -bench . -benchtime 1s -count 3 ./unixsock/memfd/
//
// The payload path is copy in + Seal + Open + read one byte per page +
// unmap + close (the last close frees the pages, on the timed path).
//
//	                                 64 KiB             1 MiB               64 MiB
//	Fresh (New on the path)          341 µs  192 MB/s   4.04 ms  260 MB/s   256 ms  262 MB/s
//	Prealloc/populate, path          335 µs  196 MB/s   1.83 ms  574 MB/s   154 ms  437 MB/s
//	Prealloc/fallocate, path         366 µs  179 MB/s   3.18 ms  330 MB/s   255 ms  263 MB/s
//	Prealloc/touch, path             212 µs  309 MB/s   0.63 ms 1672 MB/s    54 ms 1253 MB/s
//	PreallocCost/populate (pool)      78 µs             0.33 ms              30 ms
//	PreallocCost/fallocate (pool)     26 µs             0.13 ms               8 ms
//	PreallocCost/touch (pool)        225 µs             2.58 ms             207 ms
//	Copy into a reused []byte        0.8 µs 81.8 GB/s    26 µs  39.7 GB/s   2.8 ms 23.6 GB/s
//
// BenchmarkPayload, the path the bus client takes since (pwrite into a new
// memfd, seal, verify, pread into new Go memory, close), measured later
// the same day with other work running on the machine (so slower, as
// BenchmarkFresh in the same run: 557 µs, 4.2 ms, 284 ms):
//
//	Payload (FromBytes + ReadPayload) 69 µs  950 MB/s   0.63 ms 1650 MB/s    36 ms 1850 MB/s
//
// Its first 64 MiB iterations took 268 ms: the receiver's new Go memory
// faults in until the garbage collector has freed memory to reuse.
//
// What they say, on this machine (re-measure with make bench elsewhere):
//
//   - A first touch of a page costs about 12 µs here (the anchors measured
//     ~3 µs per fault on the bench machine): a fresh 64 MiB memfd spends
//     almost all its 256 ms in page faults, 90 times a plain copy.
//   - Only touching every page from user space moves that cost off the
//     publisher's path (256 -> 54 ms, 4.0 -> 0.63 ms). fallocate(2) saves
//     nothing (each page still faults into the mapping) and MAP_POPULATE
//     about 40% (the first write to each populated shared page still
//     faults; MADV_POPULATE_WRITE behaved the same in a one-off check).
//   - Pre-faulting moves the cost, it does not remove it: the pool pays
//     about what the path saves (207 ms per 64 MiB), on another goroutine,
//     and holds the memory while the memfd waits. Since a sealed memfd can
//     never be written again, a pool can only hold unwritten, pre-touched
//     memfds and must refill itself after every publish, so it helps a
//     publisher's latency only while there is idle CPU to refill it, and
//     must be bounded in bytes.
//   - A memfd has a fixed cost of about 200 µs per payload here even with
//     its pages ready (a one-off step timing at 64 KiB: create+map 10 µs,
//     Seal 70 µs, Open 7 µs, receiver faults 30 µs, unmap+close 70 µs),
//     against 0.8 µs to copy 64 KiB: the threshold for the transparent
//     path belongs well above 64 KiB, around where the inline path's
//     socket copies cost that much (about 1 MiB), to be fixed by the
//     payload-size sweep of make bench.
//   - Without any mapping (BenchmarkPayload) the fixed cost falls to about
//     70 µs at 64 KiB and a 64 MiB payload costs 36 ms, 7 times less than
//     through mappings: the kernel allocates the pages for pwrite without
//     faulting them into a page table, and pread fills memory the Go heap
//     has faulted in before.

var benchSizes = []int{64 << 10, 1 << 20, 64 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

var sink byte

// publish is the timed path of one payload once its Writer exists: the
// publisher copies its payload in, seals; the receiver opens and touches
// every page; both release.
func publish(b *testing.B, w *Writer, src []byte) {
	copy(w.Bytes(), src)
	f, err := w.Seal()
	if err != nil {
		b.Fatal(err)
	}
	m, err := Open(f, int64(len(src)))
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	p := m.Bytes()
	for i := 0; i < len(p); i += 4096 {
		sink += p[i]
	}
	m.Close()
}

// prealloc makes a Writer whose pages exist already: "populate" maps them
// with MAP_POPULATE (allocated and in the page table), "fallocate"
// allocates them with fallocate(2) (in the file, not yet mapped), "touch"
// writes a zero to every page from user space, as a pool that pre-faults
// would.
func prealloc(b *testing.B, how string, size int) *Writer {
	var w *Writer
	var err error
	switch how {
	case "populate":
		w, err = newWriter(size, unix.MAP_POPULATE)
	case "touch":
		if w, err = newWriter(size, 0); err == nil {
			p := w.Bytes()
			for i := 0; i < len(p); i += 4096 {
				p[i] = 0
			}
		}
	case "fallocate":
		if w, err = newWriter(size, 0); err == nil {
			err = unix.Fallocate(int(w.f.Fd()), 0, 0, int64(size))
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// BenchmarkFresh is the whole cost of a payload through a new memfd,
// first-touch page faults included.
func BenchmarkFresh(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			src := make([]byte, size)
			fill(src)
			b.SetBytes(int64(size))
			for b.Loop() {
				w, err := New(size)
				if err != nil {
					b.Fatal(err)
				}
				publish(b, w, src)
			}
		})
	}
}

// BenchmarkPrealloc times only the publisher's and receiver's path for a
// memfd whose pages a pool allocated beforehand, off that path (the
// allocation runs with the timer stopped).
func BenchmarkPrealloc(b *testing.B) {
	for _, how := range []string{"populate", "fallocate", "touch"} {
		for _, size := range benchSizes {
			b.Run(how+"/"+sizeName(size), func(b *testing.B) {
				src := make([]byte, size)
				fill(src)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					w := prealloc(b, how, size)
					b.StartTimer()
					publish(b, w, src)
				}
			})
		}
	}
}

// BenchmarkPreallocCost is what the pool itself pays per memfd: create it
// and allocate its pages, then discard it.
func BenchmarkPreallocCost(b *testing.B) {
	for _, how := range []string{"populate", "fallocate", "touch"} {
		for _, size := range benchSizes {
			b.Run(how+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					prealloc(b, how, size).Close()
				}
			})
		}
	}
}

// BenchmarkCopy is the baseline: one copy of the payload into a reused
// buffer, what an inline payload costs at the least per hop.
func BenchmarkCopy(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			src := make([]byte, size)
			dst := make([]byte, size)
			fill(src)
			copy(dst, src) // first-touch faults of dst out of the timing
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}

// BenchmarkPayload is the path the bus client takes: FromBytes (pwrite
// into a new memfd, seal) on the publisher's side, ReadPayload (verify,
// pread into new Go memory) on the receiver's, then close.
func BenchmarkPayload(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			src := make([]byte, size)
			fill(src)
			b.SetBytes(int64(size))
			for b.Loop() {
				f, err := FromBytes(src)
				if err != nil {
					b.Fatal(err)
				}
				data, err := ReadPayload(f, int64(size))
				if err != nil {
					b.Fatal(err)
				}
				sink += data[len(data)-1]
				f.Close()
			}
		})
	}
}
