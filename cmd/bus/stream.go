package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
	"golang.org/x/sys/unix"
)

func streamFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	timeout := fs.Duration("timeout", 5*time.Second, "dial: wait at most `D` for the listener's answer")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 2 {
			return usageError(lookup("stream"))
		}
		mode, name := args[0], args[1]
		run, ok := map[string]func(context.Context, *env, *clientlib.Conn, string) error{
			"listen": streamListen,
			"dial": func(ctx context.Context, e *env, c *clientlib.Conn, name string) error {
				dctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				sc, err := c.DialStream(dctx, name)
				if err != nil {
					return err
				}
				return pipe(ctx, e, sc)
			},
			"write": streamWrite,
			"read":  streamRead,
		}[mode]
		if !ok {
			return cli.Usagef("unknown stream mode %q; usage: bus stream %s", mode, streamArgs)
		}
		e.waitsForBus = mode == "listen"
		e.checksRefusals = mode == "listen" // refusedAfterFlush, then AcceptStream's error
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return run(ctx, e, c, name)
	}
}

// streamListen accepts one direct stream and connects it to stdin and
// stdout.
func streamListen(ctx context.Context, e *env, c *clientlib.Conn, name string) error {
	l, err := c.Listen(name)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := e.refusedAfterFlush(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "bus: listening for a stream named %q on %s\n", name, e.socketPath())
	sc, err := l.AcceptStream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: a normal way to stop
		}
		if cerr := c.Err(); cerr != nil { // why the listener closed
			return fmt.Errorf("the connection to the bus ended: %w", cerr)
		}
		return err
	}
	l.Close() // one stream: later dialers hear at once that nobody listens
	return pipe(ctx, e, sc)
}

// pipe copies stdin to the stream, half-closing it at the end of stdin,
// and the stream to stdout. It returns once both directions are done, or
// once the other end has gone (closed its side for reading as well as
// writing, so nothing more from stdin could reach it), or on interrupt.
func pipe(ctx context.Context, e *env, sc *clientlib.StreamConn) error {
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(sc, e.stdin)
		if err == nil {
			err = sc.CloseWrite()
		}
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			err = nil // the other end left first: a normal way to end
		}
		sent <- err
	}()
	in := &readErr{r: sc}
	_, err := io.Copy(e.stdout, in)
	if err == in.err && errors.Is(err, syscall.ECONNRESET) {
		err = nil // the other end left with some of our bytes unread: its choice
	}
	if err == nil {
		watch, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		select {
		case err = <-sent:
		case <-peerGone(watch, sc):
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted: a normal way to stop
	}
	return err
}

// readErr records the error its reader returned, so that a failure to read
// the stream can be told from a failure to write stdout.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// peerGone is closed once the other end of sc has closed its socket, not
// just its writing side: the kernel then reports a hang-up.
func peerGone(ctx context.Context, sc *clientlib.StreamConn) <-chan struct{} {
	gone := make(chan struct{})
	rc, err := sc.SyscallConn()
	if err != nil {
		close(gone)
		return gone
	}
	go func() {
		for ctx.Err() == nil {
			hup := true
			rc.Control(func(fd uintptr) {
				p := []unix.PollFd{{Fd: int32(fd)}} // no events asked: only a hang-up or an error wakes it
				n, err := unix.Poll(p, 200)
				hup = err == nil && n > 0 || err != nil && err != unix.EINTR
			})
			if hup {
				close(gone)
				return
			}
		}
	}()
	return gone
}

// streamWrite sends stdin as a topic stream, each read of stdin as it
// comes (so readers see a pipeline's output as it is written), and ends
// the stream at the end of stdin; on interrupt, or if stdin fails, it ends
// it as cut short (TopicWriter.CloseWithError), so readers know.
func streamWrite(ctx context.Context, e *env, c *clientlib.Conn, topic string) error {
	w, err := c.NewTopicWriter(topic)
	if err != nil {
		return err
	}
	var mu sync.Mutex // w is for one goroutine at a time: the copier, or the interrupt
	copied := make(chan error, 1)
	go func() {
		buf := make([]byte, clientlib.TopicChunk)
		for {
			n, err := e.stdin.Read(buf)
			if n > 0 {
				mu.Lock()
				_, werr := w.Write(buf[:n])
				if werr == nil {
					werr = w.Flush()
				}
				mu.Unlock()
				if werr != nil {
					copied <- werr
					return
				}
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				copied <- err
				return
			}
		}
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		err = errors.New("interrupted")
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil { // readers learn that the stream was cut short, and why
		if cerr := w.CloseWithError(err); cerr != nil || ctx.Err() != nil {
			return cerr // an interrupt is a normal way to stop
		}
		return fmt.Errorf("reading stdin: %w", err)
	}
	return w.Close()
}

// streamRead prints a topic stream, from the first message after it
// subscribed to the end the writer marks.
func streamRead(ctx context.Context, e *env, c *clientlib.Conn, topic string) error {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := c.NewTopicReader(fctx, topic)
	if err != nil {
		return err
	}
	defer r.Close()
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	fmt.Fprintf(e.stderr, "bus: reading the stream on %q from %s\n", topic, e.socketPath())
	if _, err := io.Copy(e.stdout, r); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
