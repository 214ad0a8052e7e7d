package main

// How bus stream write ends a stream on interrupt and on
// a failing stdin, and which ECONNRESET pipe takes for a normal end.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/clientlib"
)

func connectTo(t *testing.T, b *busd) *clientlib.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(filepath.Join(b.Dir, "default.sock")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readTopic reads r to its end in the background.
func readTopic(r *clientlib.TopicReader) <-chan error {
	done := make(chan error, 1)
	go func() {
		var sb strings.Builder
		_, err := io.Copy(&sb, r)
		done <- fmt.Errorf("%q: %w", sb.String(), err)
	}()
	return done
}

// Ctrl-C on bus stream write: it exits 0, and a reader gets the bytes
// sent, then ErrStreamAborted; bus stream read, as a reader, exits non-zero.
func TestStreamWriteInterrupt(t *testing.T) {
	b := startBusd(t)
	c := connectTo(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.NewTopicReader(ctx, "logs.int")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reader := b.bus("stream", "read", "logs.int")
	var rout, rerr syncBuffer
	reader.Stdout = &rout
	rstderr, err := reader.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Process.Kill(); reader.Wait() })
	bustest.WaitLine(t, rstderr, "bus: reading the stream")
	go io.Copy(&rerr, rstderr)

	got := readTopic(r)
	w := b.bus("stream", "write", "logs.int")
	stdin, err := w.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var wout syncBuffer
	w.Stdout, w.Stderr = &wout, &wout
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	io.WriteString(stdin, "part\n")
	waitOutput(t, &rout, "part\n", "bus stream read")
	if err := w.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, w, exitWait, "write after ctrl-C"); err != nil {
		t.Errorf("bus stream write after ctrl-C: %v (%s); want exit 0", err, wout.String())
	}
	select {
	case err := <-got:
		if !errors.Is(err, clientlib.ErrStreamAborted) || !strings.HasPrefix(err.Error(), `"part\n"`) {
			t.Errorf("reader: %v; want \"part\\n\" then ErrStreamAborted", err)
		}
	case <-time.After(exitWait):
		t.Fatal("the reader did not learn that the writer stopped")
	}
	err = waitExit(t, reader, exitWait, "read after the writer's ctrl-C")
	if err == nil {
		t.Errorf("bus stream read of an aborted stream exited 0; stderr %q", rerr.String())
	}
	t.Logf("bus stream read: %v, stdout %q, stderr %q", err, rout.String(), rerr.String())
}

// A failing stdin: bus stream write exits non-zero, and a reader gets
// ErrStreamAborted quoting the failure.
func TestStreamWriteStdinFails(t *testing.T) {
	b := startBusd(t)
	c := connectTo(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.NewTopicReader(ctx, "logs.fail2")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := readTopic(r)
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := b.bus("stream", "write", "logs.fail2")
	cmd.Stdin = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("exit 0 on a failing stdin: %s", out)
	}
	select {
	case err := <-got:
		if !errors.Is(err, clientlib.ErrStreamAborted) || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("reader: %v; want ErrStreamAborted quoting EISDIR", err)
		}
	case <-time.After(exitWait):
		t.Fatal("reader still waiting")
	}
}

// resetWriter is a stdout whose reader has gone: a socket that was reset.
type resetWriter struct{}

func (resetWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ECONNRESET}
}

// An ECONNRESET from writing stdout is an error: only one from reading the
// stream is the peer's normal leaving. Before the fix pipe took both for
// the peer leaving, and bus stream exited 0 with its output lost.
func TestPipeStdoutResetIsAnError(t *testing.T) {
	b := startBusd(t)
	lc, dc := connectTo(t, b), connectTo(t, b)
	l, err := lc.Listen("reset")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *clientlib.StreamConn, 1)
	go func() {
		sc, err := l.AcceptStream(ctx)
		if err == nil {
			io.WriteString(sc, "lost\n") // and stay: the peer does not leave
		}
		accepted <- sc
	}()
	sc, err := dc.DialStream(ctx, "reset")
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer != nil {
		defer peer.Close()
	}
	e := &env{stdin: strings.NewReader(""), stdout: resetWriter{}, stderr: io.Discard}
	done := make(chan error, 1)
	go func() { done <- pipe(ctx, e, sc) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("pipe: nil after writing stdout failed with ECONNRESET; want the error (bus stream would exit 0 with its output lost)")
		}
	case <-time.After(exitWait):
		t.Fatal("pipe still running")
	}
}
