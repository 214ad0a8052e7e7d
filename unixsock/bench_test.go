package unixsock

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchPair is a connected pair of one kind of stream under test.
type benchPair struct {
	w, r  io.ReadWriteCloser
	close func()
}

func connPair(b *testing.B) benchPair {
	x, y, err := Socketpair()
	if err != nil {
		b.Fatal(err)
	}
	return benchPair{x, y, func() { x.Close(); y.Close() }}
}

// connBudgetPair is connPair with a budget on the reading end, to measure
// the cost of consulting it on every read.
func connBudgetPair(b *testing.B) benchPair {
	p := connPair(b)
	p.r.(*Conn).SetFDBudget(new(benchBudget))
	return p
}

// benchBudget is the simplest shared budget: an atomic count of the
// descriptors charged, against a limit it never reaches here.
type benchBudget struct{ held atomic.Int64 }

func (bb *benchBudget) ReserveFDs(most int) int {
	bb.held.Add(int64(most))
	return most
}

func (bb *benchBudget) ReleaseFDs(n int) { bb.held.Add(-int64(n)) }

// unixConnPair is the baseline: the same kind of socketpair as a plain
// *net.UnixConn.
func unixConnPair(b *testing.B) benchPair {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	var cs [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "bench")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = c.(*net.UnixConn)
	}
	return benchPair{cs[0], cs[1], func() { cs[0].Close(); cs[1].Close() }}
}

// BenchmarkFrames streams length-prefixed frames from a writer goroutine
// through a 64 KiB bufio.Writer to a 64 KiB bufio.Reader that parses them,
// through a Conn and through a plain net.UnixConn. Only the syscall layer
// differs, so the ratio of the two is the wrapper's cost.
func BenchmarkFrames(b *testing.B) {
	for _, kind := range []struct {
		name string
		pair func(*testing.B) benchPair
	}{{"conn", connPair}, {"unixconn", unixConnPair}} {
		b.Run(kind.name, func(b *testing.B) {
			for _, size := range []int{16, 1024} {
				b.Run(sizeName(size), func(b *testing.B) { benchFrames(b, kind.pair(b), size) })
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

func benchFrames(b *testing.B, p benchPair, size int) {
	defer p.close()
	frame := binary.LittleEndian.AppendUint32(nil, uint32(size))
	frame = append(frame, make([]byte, size)...)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		bw := bufio.NewWriterSize(p.w, 64<<10)
		for range b.N {
			if _, err := bw.Write(frame); err != nil {
				errc <- err
				return
			}
		}
		errc <- bw.Flush()
	}()
	br := bufio.NewReaderSize(p.r, 64<<10)
	for i := range b.N {
		hdr, err := br.Peek(4)
		if err != nil {
			b.Fatalf("frame %d: %v", i, err)
		}
		n := int(binary.LittleEndian.Uint32(hdr))
		if _, err := br.Discard(4 + n); err != nil {
			b.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkFDPerMessage sends small frames that each carry one descriptor,
// one sendmsg per frame (descriptors must not be batched behind data that
// does not own them). The receiver parses the frame, takes the descriptor
// and closes it. The unixconn variant does the same with WriteMsgUnix and
// ReadMsgUnix, as a reference.
func BenchmarkFDPerMessage(b *testing.B) {
	b.Run("conn", func(b *testing.B) {
		x, y, err := Socketpair()
		if err != nil {
			b.Fatal(err)
		}
		defer x.Close()
		defer y.Close()
		benchFDs(b, func(frame []byte, fd int) error {
			_, err := x.WriteWithFDs(frame, []int{fd})
			return err
		}, connFDReader(y))
	})
	b.Run("conn-budget", func(b *testing.B) {
		p := connPair(b)
		defer p.close()
		x, y := p.w.(*Conn), p.r.(*Conn)
		bud := new(benchBudget)
		y.SetFDBudget(bud)
		read := connFDReader(y)
		benchFDs(b, func(frame []byte, fd int) error {
			_, err := x.WriteWithFDs(frame, []int{fd})
			return err
		}, func() (int, error) {
			fd, err := read()
			bud.ReleaseFDs(1) // the charge came with the descriptor
			return fd, err
		})
		if n := bud.held.Load(); n != 0 {
			b.Fatalf("budget holds %d descriptors after the run; want 0", n)
		}
	})
	b.Run("unixconn", func(b *testing.B) {
		p := unixConnPair(b)
		defer p.close()
		x, y := p.w.(*net.UnixConn), p.r.(*net.UnixConn)
		benchFDs(b, func(frame []byte, fd int) error {
			_, _, err := x.WriteMsgUnix(frame, unix.UnixRights(fd), nil)
			return err
		}, unixConnFDReader(y))
	})
}

func benchFDs(b *testing.B, send func([]byte, int) error, recv func() (int, error)) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	frame := appendFrame(nil, 1, []byte("fd"))
	b.ReportAllocs()
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		for range b.N {
			if err := send(frame, int(w.Fd())); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range b.N {
		fd, err := recv()
		if err != nil {
			b.Fatalf("message %d: %v", i, err)
		}
		unix.Close(fd)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func connFDReader(c *Conn) func() (int, error) {
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 64)
	return func() (int, error) {
		nfds, _, err := readFrame(br, buf)
		if err != nil {
			return -1, err
		}
		fds, err := c.TakeFDs(nfds)
		if err != nil || len(fds) != 1 {
			return -1, fmt.Errorf("took %v, %v", fds, err)
		}
		return fds[0], nil
	}
}

func unixConnFDReader(c *net.UnixConn) func() (int, error) {
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	return func() (int, error) {
		// The kernel ends each read after the frame that carried a
		// descriptor, so one read is one frame here.
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return -1, err
		}
		if n != frameHeader+2 {
			return -1, fmt.Errorf("read %d bytes", n)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return -1, fmt.Errorf("control: %v, %v", msgs, err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return -1, fmt.Errorf("rights: %v, %v", fds, err)
		}
		return fds[0], nil
	}
}

// BenchmarkWriteRead writes a buffer and reads it back in one goroutine,
// so no scheduling enters the figure: the difference between conn and
// unixconn is the wrapper's cost per write+read pair of system calls.
func BenchmarkWriteRead(b *testing.B) {
	for _, kind := range []struct {
		name string
		pair func(*testing.B) benchPair
	}{{"conn", connPair}, {"conn-budget", connBudgetPair}, {"unixconn", unixConnPair}} {
		b.Run(kind.name, func(b *testing.B) {
			for _, size := range []int{16, 64 << 10} {
				b.Run(sizeName(size), func(b *testing.B) {
					p := kind.pair(b)
					defer p.close()
					buf := make([]byte, size)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := p.w.Write(buf); err != nil {
							b.Fatal(err)
						}
						if _, err := io.ReadFull(p.r, buf); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
