package unixsock

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFramesKeepTheirFDs sends thousands of length-prefixed frames, some
// with descriptors and some without, written whole, split after the first
// byte, or batched several to a sendmsg with all their descriptors on the
// first byte, and reads them back through a bufio.Reader of several sizes.
// However the kernel cuts or joins the reads, each frame must take exactly
// its own descriptors from the FIFO.
func TestFramesKeepTheirFDs(t *testing.T) {
	const frames = 3000
	for _, size := range []int{16, 512, 64 << 10} {
		t.Run(fmt.Sprint("bufio", size), func(t *testing.T) {
			checkFDLeaks(t)
			a, b := socketPair(t)
			pool := memfdPool(t, 7)
			errc := make(chan error, 1)
			go func() { errc <- writeFrames(a, pool, frames) }()

			br := bufio.NewReaderSize(b, size)
			buf := make([]byte, 1<<10)
			for i := range frames {
				nfds, body, err := readFrame(br, buf)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if got := int(binary.LittleEndian.Uint32(body)); got != i || nfds != frameFDs(i) {
					t.Fatalf("frame %d: header says frame %d with %d fds; want %d fds", i, got, nfds, frameFDs(i))
				}
				fds, err := b.TakeFDs(nfds)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				for j, fd := range fds {
					want := pool[(i+j)%len(pool)]
					if got := fstatID(t, fd); got != fstatID(t, want) {
						t.Errorf("frame %d fd %d: got %v; want the file of pool entry %d", i, j, got, (i+j)%len(pool))
					}
					unix.Close(fd)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after the last frame: %v; want io.EOF", err)
			}
			if q := b.QueuedFDs(); q != 0 {
				t.Fatalf("%d fds left over", q)
			}
		})
	}
}

// frameFDs is how many descriptors frame i carries: none for half of them.
func frameFDs(i int) int { return []int{0, 1, 0, 3, 0, 2}[i%6] }

func memfdPool(t *testing.T, n int) []int {
	t.Helper()
	pool := make([]int, n)
	for i := range pool {
		fd, err := unix.MemfdCreate(fmt.Sprint("pool", i), unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		pool[i] = fd
		t.Cleanup(func() { unix.Close(fd) })
	}
	return pool
}

// writeFrames writes n frames in a random mix of whole, split and batched
// writes, then half-closes.
func writeFrames(c *Conn, pool []int, n int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		batch    [][]byte
		batchFDs []int
	)
	flush := func() error {
		_, err := c.WriteBuffers(batch, batchFDs)
		batch, batchFDs = batch[:0], batchFDs[:0]
		return err
	}
	for i := range n {
		nfds := frameFDs(i)
		body := binary.LittleEndian.AppendUint32(nil, uint32(i))
		body = append(body, make([]byte, rng.IntN(200))...)
		frame := appendFrame(nil, nfds, body)
		fds := make([]int, nfds)
		for j := range fds {
			fds[j] = pool[(i+j)%len(pool)]
		}
		var err error
		switch rng.IntN(3) {
		case 0: // whole
			if err = flush(); err == nil {
				_, err = c.WriteWithFDs(frame, fds)
			}
		case 1: // the fds ride the first byte; the rest follows
			if err = flush(); err == nil {
				if _, err = c.WriteWithFDs(frame[:1], fds); err == nil {
					_, err = c.Write(frame[1:])
				}
			}
		case 2: // batched
			batch = append(batch, frame)
			batchFDs = append(batchFDs, fds...)
			if len(batch) == 8 {
				err = flush()
			}
		}
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return c.CloseWrite()
}
