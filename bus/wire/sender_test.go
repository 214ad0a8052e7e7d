package wire

import (
	"bytes"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// owner is the smallest owner of a Sender: an Outbox under a lock.
type owner struct {
	mu   sync.Mutex
	out  Outbox
	sent int
}

func (o *owner) take(batch *Outbox, descOK bool) (bool, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.TakeInto(batch, descOK, BatchMax)
}

func TestSenderTryFlushThenFlush(t *testing.T) {
	a, b := smallBufferPair(t)
	o := &owner{}
	s := NewSender(a, o.take, func(n, _ int) { o.sent += n })

	small := AppendPub(nil, "a", "", nil, []byte("hi"), 0)
	o.out.Append(small)
	if !s.TryFlush() {
		t.Fatal("TryFlush could not send a small frame to an empty socket")
	}
	got := make([]byte, len(small))
	io.ReadFull(b, got)
	if !bytes.Equal(got, small) || o.sent != len(small) {
		t.Fatalf("read %q, sent %d", got, o.sent)
	}

	big := AppendPub(nil, "a", "", nil, bytes.Repeat([]byte("x"), 1<<20), 0)
	o.out.Append(big)
	if s.TryFlush() {
		t.Fatal("TryFlush claims to have sent 1 MiB into a 4 KiB socket buffer")
	}
	f, _ := os.Open(os.DevNull)
	defer f.Close()
	o.out.AddFDs([]int{int(f.Fd())}, nil)
	o.out.Append(AppendPub(nil, "b", "", nil, nil, 1))
	done := make(chan error, 1)
	go func() { done <- s.Flush() }() // finishes the partial batch, then sends the fd frame
	lim := DefaultLimits
	r := NewReader(b, &lim)
	for _, want := range []string{"a", "b"} {
		fr, err := r.Next(nil)
		if err != nil || string(fr.Topic) != want {
			t.Fatalf("got %q, %v; want %q", fr.Topic, err, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fds, err := b.TakeFDs(1); err != nil || len(fds) != 1 {
		t.Fatalf("fd frame's descriptor: %v", err)
	} else {
		unix.Close(fds[0])
	}
}

// smallBufferPair returns connected Conns whose first has a 4 KiB send
// buffer, set on the raw socket before the Conn wraps it.
func smallBufferPair(t *testing.T) (*unixsock.Conn, *unixsock.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	var conns [2]*unixsock.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := unixsock.FileConn(f, unixsock.WithMaxRecvFDs(8))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}
