package unixsock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSocketpairRoundTrip(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Fatalf("got %q; want %q", got, "hello")
	}
	// The other direction still works after a's CloseWrite.
	if _, err := b.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "back" {
		t.Fatalf("got %q, %v; want %q", buf, err, "back")
	}
	if a.LocalAddr() == nil || a.RemoteAddr() == nil || a.LocalAddr().Network() != "unix" {
		t.Fatalf("addrs %v %v", a.LocalAddr(), a.RemoteAddr())
	}
}

func TestSocketpairCred(t *testing.T) {
	checkFDLeaks(t)
	a, _ := socketPair(t)
	want := ownCred(t, os.Getpid())
	if got := a.Peer(); !sameCred(got, want) {
		t.Fatalf("Peer() = %+v; want %+v", got, want)
	}
	checkPidFD(t, a.PeerPidFD(), os.Getpid())
}

// checkPidFD verifies that pidfd is a close-on-exec pidfd for pid.
func checkPidFD(t *testing.T, pidfd, pid int) {
	t.Helper()
	if pidfd < 0 {
		t.Fatalf("PeerPidFD() = %d; this kernel (6.5+) has SO_PEERPIDFD", pidfd)
	}
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", pidfd))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(info), fmt.Sprintf("\nPid:\t%d\n", pid)) {
		t.Fatalf("fdinfo of pidfd %d does not name pid %d:\n%s", pidfd, pid, info)
	}
	checkCloexec(t, pidfd)
}

func checkCloexec(t testing.TB, fd int) {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("fd %d is not close-on-exec", fd)
	}
}

func TestPassFDSameOpenFile(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	f, err := os.CreateTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	if n, err := a.WriteWithFDs([]byte("x"), []int{int(f.Fd())}); n != 1 || err != nil {
		t.Fatalf("WriteWithFDs = %d, %v", n, err)
	}
	buf := make([]byte, 8)
	if n, err := b.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if q := b.QueuedFDs(); q != 1 {
		t.Fatalf("QueuedFDs() = %d; want 1", q)
	}
	fds, err := b.TakeFDs(1)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	checkCloexec(t, fds[0])
	if got, want := fstatID(t, fds[0]), fstatID(t, int(f.Fd())); got != want {
		t.Fatalf("received fd is %v; want %v", got, want)
	}
	// One open file description: a write through the received fd moves
	// the offset the original sees.
	if _, err := unix.Write(fds[0], []byte("through the copy")); err != nil {
		t.Fatal(err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != int64(len("through the copy")) {
		t.Fatalf("offset through original = %d; want %d", off, len("through the copy"))
	}
}

func TestCtruncClosesFDs(t *testing.T) {
	for _, max := range []int{0, 2} {
		t.Run(fmt.Sprint("max", max), func(t *testing.T) {
			checkFDLeaks(t)
			a, b := socketPair(t, WithMaxRecvFDs(max))
			_, w := pipeFDs(t)
			if _, err := a.WriteWithFDs([]byte("abc"), []int{w, w, w, w, w}); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			n, err := b.Read(buf)
			if !errors.Is(err, ErrFDsTruncated) {
				t.Fatalf("Read = %d, %v; want ErrFDsTruncated", n, err)
			}
			if n != 3 {
				t.Fatalf("Read returned %d bytes; want the 3 that came with the fds", n)
			}
			if q := b.QueuedFDs(); q != 0 {
				t.Fatalf("QueuedFDs() = %d; want 0", q)
			}
			// The FIFO can no longer be trusted: the error sticks.
			if _, err := a.Write([]byte("more")); err != nil {
				t.Fatal(err)
			}
			if n, err := b.Read(buf); n != 0 || !errors.Is(err, ErrFDsTruncated) {
				t.Fatalf("second Read = %d, %v; want 0, ErrFDsTruncated", n, err)
			}
		})
	}
}

func TestMaxFDsPerMessage(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t, WithMaxRecvFDs(MaxFDsPerMessage))
	_, w := pipeFDs(t)
	fds := make([]int, MaxFDsPerMessage+1)
	for i := range fds {
		fds[i] = w
	}
	if n, err := a.WriteWithFDs([]byte("z"), fds); n != 0 || !errors.Is(err, ErrTooManyFDs) {
		t.Fatalf("WriteWithFDs(254 fds) = %d, %v; want 0, ErrTooManyFDs", n, err)
	}
	if _, err := a.WriteWithFDs([]byte("y"), fds[:MaxFDsPerMessage]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	// Only "y" arrives: the refused write sent nothing.
	if n, err := b.Read(buf); n != 1 || err != nil || buf[0] != 'y' {
		t.Fatalf("Read = %d, %v, %q", n, err, buf[:n])
	}
	got, err := b.TakeFDs(MaxFDsPerMessage)
	if err != nil {
		t.Fatal(err)
	}
	want := fstatID(t, w)
	for _, fd := range got {
		if fstatID(t, fd) != want {
			t.Errorf("fd %d is not the pipe", fd)
		}
		unix.Close(fd)
	}
}

func TestTakeFDs(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	r, w := pipeFDs(t)
	if _, err := a.WriteWithFDs([]byte("1"), []int{r}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteWithFDs([]byte("2"), []int{w, r}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	// The kernel ends a read after the bytes that carried fds, so this
	// takes two reads.
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	if fds, err := b.TakeFDs(4); fds != nil || !errors.Is(err, ErrMissingFDs) {
		t.Fatalf("TakeFDs(4) = %v, %v; want ErrMissingFDs", fds, err)
	}
	if _, err := b.TakeFDs(-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("TakeFDs(-1) error = %v; want EINVAL", err)
	}
	if fds, err := b.TakeFDs(0); fds != nil || err != nil {
		t.Fatalf("TakeFDs(0) = %v, %v; want nil, nil", fds, err)
	}
	fds, err := b.TakeFDs(3)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{r, w, r} {
		if fstatID(t, fds[i]) != fstatID(t, want) {
			t.Errorf("fd %d of 3 is not the expected pipe end", i)
		}
		unix.Close(fds[i])
	}
}

func TestCloseClosesQueuedFDs(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	_, w := pipeFDs(t)
	if _, err := a.WriteWithFDs([]byte("x"), []int{w, w, w}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := b.Read(buf); err != nil {
		t.Fatal(err)
	}
	if q := b.QueuedFDs(); q != 3 {
		t.Fatalf("QueuedFDs() = %d; want 3", q)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close = %v; want the first result, nil", err)
	}
	if _, err := b.TakeFDs(1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("TakeFDs after Close = %v; want net.ErrClosed", err)
	}
	// checkFDLeaks sees whether the three queued fds and the pidfd closed.
}

func TestFDsArrivingAfterCloseAreClosed(t *testing.T) {
	checkFDLeaks(t)
	_, b := socketPair(t)
	_, w := pipeFDs(t)
	fd, err := unix.Dup(w)
	if err != nil {
		t.Fatal(err)
	}
	// A read that raced with Close: its fds must not outlive the Conn.
	b.Close()
	n := copy(b.oob, unix.UnixRights(fd))
	b.rmsg.Flags = 0
	b.rmsg.SetControllen(n)
	if err := b.queueControl(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("queueControl after Close = %v; want net.ErrClosed", err)
	}
	// As Read does once it has let go of its lock.
	b.disposeFDs(b.rdrop)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd %d still open after queueControl on a closed Conn", fd)
	}
}

func TestDeadlineAndCloseWakeRead(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	if err := b.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := b.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read error = %v; want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read error %v is not a net.Error timeout", err)
	}
	if oe, ok := err.(net.Error); !ok || !oe.Timeout() {
		t.Fatalf("Read error %T does not assert to a timing-out net.Error", err)
	}
	b.SetReadDeadline(time.Time{})

	done := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Read after Close = %v; want net.ErrClosed", err)
	}
	// The peer sees EOF.
	if n, err := a.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("peer Read = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestWriteDeadline(t *testing.T) {
	checkFDLeaks(t)
	a, _ := socketPair(t)
	big := make([]byte, 8<<20) // more than the socket buffer
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := a.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n == len(big) {
		t.Fatalf("Write = %d, %v; want a partial write and os.ErrDeadlineExceeded", n, err)
	}
}

// setSndBuf shrinks the send buffer so large writes go out in pieces.
func setSndBuf(t *testing.T, c *Conn, size int) {
	t.Helper()
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
}

func TestPartialWritesSendFDsOnce(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	setSndBuf(t, a, 4096)
	_, w := pipeFDs(t)

	one := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var bufs [][]byte
	var want []byte
	for i := range 3000 { // more than one sendmsg's worth of iovecs
		p := one[:i%97] // includes empty buffers
		bufs = append(bufs, p)
		want = append(want, p...)
	}
	want = append(one, want...)

	errc := make(chan error, 1)
	go func() {
		if n, err := a.WriteWithFDs(one, []int{w}); n != len(one) || err != nil {
			errc <- fmt.Errorf("WriteWithFDs = %d, %v", n, err)
			return
		}
		if n, err := a.WriteBuffers(bufs, []int{w, w}); n != int64(len(want)-len(one)) || err != nil {
			errc <- fmt.Errorf("WriteBuffers = %d, %v", n, err)
			return
		}
		errc <- a.CloseWrite()
	}()
	var got []byte
	buf := make([]byte, 1000)
	for {
		n, err := b.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(want))
	}
	if q := b.QueuedFDs(); q != 3 {
		t.Fatalf("QueuedFDs() = %d; want 3: each write's fds exactly once", q)
	}
}

func TestWriteEdgeCases(t *testing.T) {
	checkFDLeaks(t)
	a, _ := socketPair(t)
	_, w := pipeFDs(t)
	if _, err := a.WriteWithFDs(nil, []int{w}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("WriteWithFDs(nil, fds) = %v; want EINVAL", err)
	}
	if _, err := a.WriteBuffers([][]byte{nil, {}}, []int{w}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("WriteBuffers(empty, fds) = %v; want EINVAL", err)
	}
	if n, err := a.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
	if n, err := a.WriteBuffers(nil, nil); n != 0 || err != nil {
		t.Fatalf("WriteBuffers(nil) = %d, %v", n, err)
	}
}

func TestWriteAfterPeerClosed(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	b.Close()
	_, err := a.Write([]byte("x"))
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to closed peer = %v; want EPIPE", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("error %v is not an *OpError for write", err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	a, b := socketPair(t)
	out := []byte("0123456789abcdef")
	in := make([]byte, len(out))
	bufs := [][]byte{out[:8], out[8:]}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, in); err != nil {
			t.Fatal(err)
		}
		if _, err := a.WriteBuffers(bufs, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Write+Read+WriteBuffers+Read allocate %v times; want 0", allocs)
	}
}

func TestFileConn(t *testing.T) {
	checkFDLeaks(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f0, f1 := os.NewFile(uintptr(fds[0]), "s0"), os.NewFile(uintptr(fds[1]), "s1")
	defer f1.Close()
	c, err := FileConn(f0, WithMaxRecvFDs(4))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f0.Close() // FileConn duplicated it
	if _, err := f1.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("got %q, %v", buf, err)
	}
	if got := c.Peer().PID; got != os.Getpid() {
		t.Fatalf("Peer().PID = %d; want %d", got, os.Getpid())
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if _, err := FileConn(pr); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("FileConn(pipe) = %v; want ErrNotSocket", err)
	}
	dg, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	df := os.NewFile(uintptr(dg[0]), "dgram")
	defer df.Close()
	defer unix.Close(dg[1])
	if _, err := FileConn(df); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("FileConn(datagram socket) = %v; want ErrNotSocket", err)
	}
}

func TestConnFile(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	f, err := a.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("via file")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "via file" {
		t.Fatalf("got %q, %v", buf, err)
	}
}

func TestInvalidOptions(t *testing.T) {
	checkFDLeaks(t)
	for _, n := range []int{-1, MaxFDsPerMessage + 1} {
		if _, _, err := Socketpair(WithMaxRecvFDs(n)); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("WithMaxRecvFDs(%d): %v; want ErrInvalidOption", n, err)
		}
	}
	path := tempSockPath(t, "o.sock")
	if _, err := Listen(path, WithMode(os.ModeSetuid|0o600)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("WithMode(setuid): %v; want ErrInvalidOption", err)
	}
	if _, err := Listen(path, WithConnOptions(WithMaxRecvFDs(-1))); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("WithConnOptions(WithMaxRecvFDs(-1)): %v; want ErrInvalidOption", err)
	}
	if _, _, err := Socketpair(WithSendBuffer(-1)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("WithSendBuffer(-1): %v; want ErrInvalidOption", err)
	}
}

func TestSendBuffer(t *testing.T) {
	sndbuf := func(c *Conn) int {
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	plain, _ := socketPair(t)
	big, _ := socketPair(t, WithSendBuffer(512<<10))
	// The kernel doubles what it is asked for, and caps it at wmem_max.
	if got, def := sndbuf(big), sndbuf(plain); got <= def && def < 1<<20 {
		t.Fatalf("SO_SNDBUF %d with WithSendBuffer(512 KiB); %d without", got, def)
	}
}

// TestKernelReadStopsAfterFDs pins down the kernel behaviour the doc relies
// on: a stream read may join buffers without descriptors to one with them,
// but stops after the first buffer that carries descriptors, so one read
// never holds two sendmsg calls' descriptors.
func TestKernelReadStopsAfterFDs(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	_, w := pipeFDs(t)
	for _, m := range []struct {
		data string
		fds  []int
	}{{"x", nil}, {"y", []int{w}}, {"z", []int{w, w}}, {"w", nil}} {
		if _, err := a.WriteWithFDs([]byte(m.data), m.fds); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	for _, want := range []struct {
		data   string
		queued int
	}{{"xy", 1}, {"z", 3}, {"w", 3}} {
		n, err := b.Read(buf)
		if err != nil || string(buf[:n]) != want.data || b.QueuedFDs() != want.queued {
			t.Fatalf("Read = %q, %v with %d queued; want %q with %d", buf[:n], err, b.QueuedFDs(), want.data, want.queued)
		}
	}
}

// TryWrite takes what fits and returns at once when the socket is full.
func TestTryWriteNeverWaits(t *testing.T) {
	a, b := socketPair(t)
	setSndBuf(t, a, 4096)
	big := make([]byte, 1<<20)
	done := make(chan struct{})
	var n int
	var err error
	go func() { n, err = a.TryWrite(big); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("TryWrite blocked on a full socket")
	}
	if err != nil || n <= 0 || n >= len(big) {
		t.Fatalf("TryWrite = %d, %v; want part of %d bytes", n, err, len(big))
	}
	if m, err := a.TryWrite(big); err != nil || m != 0 {
		t.Fatalf("TryWrite on a full socket = %d, %v; want 0, nil", m, err)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
}

func TestUnreadCountsWhatThePeerHasNotRead(t *testing.T) {
	a, b := socketPair(t)
	if n, err := a.Unread(); err != nil || n != 0 {
		t.Fatalf("Unread of a fresh socket: %d, %v", n, err)
	}
	a.Write(make([]byte, 1000))
	a.Write(make([]byte, 1000))
	if n, err := a.Unread(); err != nil || n < 2000 {
		t.Fatalf("Unread after writing 2000 bytes: %d, %v", n, err)
	}
	full, _ := a.Unread()
	io.ReadFull(b, make([]byte, 1000)) // the first write's buffer, whole
	if n, _ := a.Unread(); n >= full || n < 1000 {
		t.Fatalf("Unread after the peer read one of two writes: %d (before: %d)", n, full)
	}
	io.ReadFull(b, make([]byte, 1000))
	if n, _ := a.Unread(); n != 0 {
		t.Fatalf("Unread after the peer read everything: %d", n)
	}
}
