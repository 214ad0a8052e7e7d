package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/busd/busd/clientlib"
)

func streamFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	timeout := fs.Duration("timeout", 5*time.Second, "dial: wait at most `D` for the listener's answer")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 2 {
			return errors.New("usage: bus stream " + streamArgs)
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
			return fmt.Errorf("bus stream %s: unknown mode; usage: bus stream %s", mode, streamArgs)
		}
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
	if err := e.flush(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "bus: listening for a stream named %q on %s\n", name, e.socketPath())
	sc, err := l.AcceptStream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: a normal way to stop
		}
		return err
	}
	l.Close() // one stream: later dialers hear at once that nobody listens
	return pipe(ctx, e, sc)
}

// pipe copies stdin to the stream, half-closing it at the end of stdin,
// and the stream to stdout, until both are done: the other end has closed
// its side, and stdin has ended (or the other end stopped reading).
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
		sent <- err
	}()
	_, err := io.Copy(e.stdout, sc)
	if serr := <-sent; err == nil {
		err = serr
	}
	if ctx.Err() != nil {
		return nil // interrupted: a normal way to stop
	}
	return err
}

// streamWrite sends stdin as a topic stream.
func streamWrite(_ context.Context, e *env, c *clientlib.Conn, topic string) error {
	w, err := c.NewTopicWriter(topic)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, e.stdin); err != nil {
		return err
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
