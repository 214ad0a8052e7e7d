package memfd

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

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
