package main

// How bus stream exits: on a failing stdin, and when the peer leaves
// with input unread.

import (
	"context"
	"io"
	"os"
	"testing"
	"time"
)

// When reading stdin fails, bus stream write exits non-zero and ends the
// stream, so a reader does not wait. Before the fix it exited without
// sending the end marker.
func TestCLIStreamWriteStdinErrorAbortsReaders(t *testing.T) {
	b := startBusd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := connectTo(t, b)
	r, err := c.NewTopicReader(ctx, "logs.fail")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir, err := os.Open(t.TempDir()) // read(2) on a directory fails with EISDIR
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := b.bus("stream", "write", "logs.fail")
	cmd.Stdin = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("bus stream write with a failing stdin exited 0: %s", out)
	}
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); done <- err }()
	select {
	case err := <-done:
		t.Logf("reader ended: %v", err)
	case <-time.After(exitWait):
		r.Close()
		<-done
		t.Fatal("the writer exited on a stdin error, but the reader still waits for the stream's end")
	}
}

// A peer that closes the stream with bytes of ours still unread leaves an
// ECONNRESET on the socket (AF_UNIX does this), which the read side of
// pipe sees before EOF: it is a normal end, as on the write side, and
// `bus stream dial` exits 0. Before the fix the read side returned it as
// an error, and the command exited 1.
func TestCLIStreamPeerLeavesWithInputUnread(t *testing.T) {
	b := startBusd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := connectTo(t, b)
	l, err := c.Listen("oneline")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc, err := l.AcceptStream(ctx)
		if err != nil {
			return
		}
		buf := make([]byte, 16)
		io.ReadFull(sc, buf)        // read a little of what the dialer sends
		io.WriteString(sc, "bye\n") // answer
		time.Sleep(200 * time.Millisecond)
		sc.Close() // and leave, the rest unread
	}()
	cmd := b.bus("stream", "dial", "oneline")
	cmd.Stdin = io.LimitReader(zeros{}, 64<<20) // more than the socket buffers
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = waitExit(t, cmd, exitWait, "after the peer left")
	if out.String() != "bye\n" {
		t.Errorf("printed %q; want %q", out.String(), "bye\n")
	}
	if err != nil {
		t.Errorf("bus stream dial: %v, stderr %q; want a clean end (the peer answered and left)", err, errOut.String())
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
