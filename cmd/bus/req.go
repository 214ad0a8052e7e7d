package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// errTimeout ends a request that got no reply in time.
var errTimeout = errors.New("timeout")

func reqFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	timeout := fs.Duration("timeout", 5*time.Second, "wait at most `D` for the reply")
	verbose := fs.Bool("v", false, "print the reply's topic, origin and headers to stderr")
	var out outgoing
	out.register(fs, "DATA, or stdin, is JSON, and the reply is printed as a line of JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usageError(lookup("req"))
		}
		if err := checkTimeout(*timeout); err != nil {
			return err
		}
		if err := out.prepare(); err != nil {
			return err
		}
		data, err := argOrStdin(e, args[1:])
		if err != nil {
			return err
		}
		m, err := out.message(args[0], data)
		if err != nil {
			return err
		}
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		r, err := c.RequestMsg(rctx, m)
		if err != nil {
			// Only our own deadline is a timeout; ctx ending is an interrupt.
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return fmt.Errorf("no reply from %q within %v: %w", args[0], *timeout, errTimeout)
			}
			return err
		}
		defer r.CloseFiles()
		if *verbose {
			fmt.Fprintf(e.stderr, "bus: reply %s\n", describe(r))
		}
		var payload []byte
		if out.json {
			payload = newJSONPrinter(e.stderr).line(r)
		} else {
			payload = withNewline(r.Data)
		}
		_, err = e.stdout.Write(payload)
		return err
	}
}

// argOrStdin returns the DATA argument if there is one, else all of stdin.
func argOrStdin(e *env, data []string) ([]byte, error) {
	if len(data) > 0 {
		return []byte(data[0]), nil
	}
	b, err := io.ReadAll(e.stdin)
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	return b, nil
}

// withNewline ends b with a newline, so the shell prompt after a reply
// starts on a line of its own. It copies rather than append to b in place:
// a received payload shares its array with its neighbours.
func withNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\n")) {
		return b
	}
	return append(b[:len(b):len(b)], '\n')
}
