package clientlib

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Against a broker that has stopped reading, nothing waits for ever: the
// write timeout ends the connection, and contexts bound the waits.

// watchdog closes c if the test is still running after 10 seconds, so that
// a call that would wait for ever returns (with an error the test rejects).
func watchdog(t *testing.T, c *Conn) {
	timer := time.AfterFunc(10*time.Second, func() { c.Close() })
	t.Cleanup(func() { timer.Stop() })
}

// fillOutput publishes more than the socket's buffer holds, so that some
// output waits and the writer is blocked, and until the pending output is
// at its limit, which it finds out from PublishContext giving up. A PublishContext that gives up sooner, because the writer was slow
// to run, does not stop it. It returns early if the connection ends.
func fillOutput(t *testing.T, c *Conn) {
	t.Helper()
	c.mu.Lock()
	sock := c.sess.sock
	c.mu.Unlock()
	f, err := sock.File()
	if err != nil {
		t.Fatal(err)
	}
	sndbuf, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64<<10)
	for sent := 0; ; sent += len(data) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := c.PublishContext(ctx, "t", data)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			if sent > sndbuf { // some of it cannot be in the socket: it waits
				return
			}
			sent -= len(data) // not sent: try again
		case c.Err() != nil:
			return
		case err != nil:
			t.Fatalf("filling the output: %v", err)
		}
	}
}

// within fails the test if more than limit passed since start.
func within(t *testing.T, what string, start time.Time, limit time.Duration) {
	t.Helper()
	if d := time.Since(start); d > limit {
		t.Fatalf("%s took %v; want at most %v", what, d.Round(time.Millisecond), limit)
	}
}

func TestWriteTimeoutEndsTheConnection(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		call func(*Conn) error // blocks once the broker stops reading
	}{
		{"Publish", func(c *Conn) error {
			for {
				if err := c.Publish("t", make([]byte, 64<<10)); err != nil {
					return err
				}
			}
		}},
		{"Flush", func(c *Conn) error {
			fillOutput(t, c)
			return c.Flush(context.Background())
		}},
		{"Request", func(c *Conn) error {
			fillOutput(t, c)
			_, err := c.Request(context.Background(), "t", nil)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFakeBus(t)
			opt, reported := reports()
			c := fb.connect(WithWriteTimeout(timeout), WithPendingLimit(64<<10), opt)
			watchdog(t, c)
			start := time.Now()
			if err := tc.call(c); !errors.Is(err, ErrWriteTimeout) {
				t.Fatalf("%s to a broker that stopped reading: %v; want ErrWriteTimeout", tc.name, err)
			}
			within(t, tc.name, start, 5*time.Second)
			if err := c.Err(); !errors.Is(err, ErrWriteTimeout) {
				t.Fatalf("the connection ended with %v; want ErrWriteTimeout", err)
			}
			if r := nextReport(t, reported); !errors.Is(r.err, ErrWriteTimeout) {
				t.Fatalf("the error handler was told %v; want ErrWriteTimeout", r.err)
			}
		})
	}
}

func TestContextsBoundWaitsForABrokerThatStoppedReading(t *testing.T) {
	const bound = 100 * time.Millisecond
	for _, tc := range []struct {
		name string
		call func(context.Context, *Conn) error
	}{
		{"PublishContext", func(ctx context.Context, c *Conn) error {
			return c.PublishContext(ctx, "t", []byte("x"))
		}},
		{"PublishMsgContext", func(ctx context.Context, c *Conn) error {
			return c.PublishMsgContext(ctx, &Msg{Topic: "t", Header: HeaderOf("k", "v")})
		}},
		{"Request", func(ctx context.Context, c *Conn) error {
			_, err := c.Request(ctx, "t", []byte("x"))
			return err
		}},
		{"RequestValue", func(ctx context.Context, c *Conn) error {
			_, err := c.RequestValue(ctx, "t", 42, nil)
			return err
		}},
		{"Flush", func(ctx context.Context, c *Conn) error { return c.Flush(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFakeBus(t)
			c := fb.connect(WithPendingLimit(64 << 10)) // the default write timeout, 10 s
			watchdog(t, c)
			fillOutput(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			start := time.Now()
			if err := tc.call(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s with a full output: %v; want its context's end", tc.name, err)
			}
			within(t, tc.name, start, bound+2*time.Second)
			if err := c.Err(); err != nil {
				t.Fatalf("the connection ended (%v): a context's end is not the connection's", err)
			}
		})
	}
}

func TestCloseReturnsWhenTheBrokerStoppedReading(t *testing.T) {
	fb := newFakeBus(t)
	c := fb.connect(WithPendingLimit(64 << 10))
	fillOutput(t, c)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	within(t, "Close", start, closeFlush+2*time.Second)
}

// A broker that reads slowly, but reads, is waited for, however long a
// write then waits: the kernel wakes a writer only once most of the
// socket's buffer is free, long after the broker began to read, so a
// write may move no byte for longer than the timeout while the broker
// reads every so often.
func TestSlowBrokerIsNotAStall(t *testing.T) {
	const timeout = 300 * time.Millisecond
	fb := newFakeBus(t)
	c := fb.connect(WithWriteTimeout(timeout), WithPendingLimit(64<<10))
	watchdog(t, c)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 256<<10)
		// Less often than the timeout: no read within some timeouts.
		tick := time.NewTicker(timeout * 4 / 3)
		defer tick.Stop()
		for range tick.C {
			if _, err := io.ReadFull(fb.sock, buf); err != nil {
				return
			}
		}
	}()
	// The socket's buffer (2 MiB here), and then what the broker must read.
	const total = 2<<20 + 768<<10
	data := make([]byte, 64<<10)
	start := time.Now()
	for sent := 0; sent < total; sent += len(data) {
		if err := c.Publish("t", data); err != nil {
			t.Fatalf("after %d bytes to a broker reading slowly: %v", sent, err)
		}
	}
	if d := time.Since(start); d < 2*timeout {
		t.Fatalf("publishing took %v: the broker's pace did not make the writer wait longer than its timeout", d)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("the connection ended: %v", err)
	}
	fb.sock.Close()
	<-readerDone
}

// The pending limit bounds what waits for the writer however many batches
// it takes to write it: a batch is at most wire.BatchMax, and what it
// leaves behind still counts. A broker that reads slowly makes every batch
// start with the box full.
func TestPendingLimitHoldsAcrossBatches(t *testing.T) {
	const limit = 3 << 20
	fb := newFakeBus(t)
	c := fb.connect(WithPendingLimit(limit))
	read := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := fb.sock.Read(buf); err != nil {
				read <- err
				return
			}
			time.Sleep(200 * time.Microsecond) // slow, so the writer lags the publisher
		}
	}()
	data := make([]byte, 64<<10)
	most := 0
	for range 200 {
		if err := c.Publish("t", data); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		most = max(most, c.out.Len())
		c.mu.Unlock()
	}
	if most > limit+len(data)+256 {
		t.Fatalf("%d bytes waited for the writer; the limit is %d", most, limit)
	}
	select {
	case err := <-read:
		t.Fatalf("the broker's side stopped reading: %v", err)
	default:
	}
}
