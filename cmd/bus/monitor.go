package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/clientlib"
)

const monitorArgs = "[-json] [PATTERN]"

// seen is what the monitor's handler passes to its printing loop: a
// message, or a report of messages lost, in the order they came.
type seen struct {
	m    *clientlib.Msg
	lost *clientlib.LostError
}

func monitorFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	asJSON := fs.Bool("json", false, "print each message as one line of JSON, as sub -json does, with fds the number the message carried; a loss as {\"lost\":N,\"reason\":...}")
	return func(ctx context.Context, e *env, args []string) error {
		pattern := ">"
		switch len(args) {
		case 0:
		case 1:
			pattern = args[0]
		default:
			return usageError(lookup("monitor"))
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// Large, so that bursts wait here rather than in the broker, which
		// drops what a monitor has no room for; losses come through too.
		ch := make(chan seen, 4096)
		put := func(s seen) {
			select {
			case ch <- s:
			case <-ctx.Done():
			}
		}
		e.onLost = func(le *clientlib.LostError) { put(seen{lost: le}) }
		e.checksRefusals, e.waitsForBus = true, true
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Subscribe(pattern, func(m *clientlib.Msg) { put(seen{m: m}) }, clientlib.AsMonitor()); err != nil {
			return err
		}
		if err := e.refusedAfterFlush(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "bus: monitoring %q on %s\n", pattern, e.socketPath())
		var jp *jsonPrinter
		if *asJSON {
			jp = newJSONPrinter(e.stderr)
		}
		out := bufio.NewWriter(e.stdout)
		defer out.Flush()
		for {
			var s seen
			select {
			case s = <-ch:
			case <-ctx.Done():
				return nil // interrupted: the way a monitor stops
			case <-e.refused: // a restarted broker would not restore it
				return e.subscriptionRefused()
			case <-e.closed:
				return fmt.Errorf("the connection to the bus ended: %w", c.Err())
			}
			if err := printSeen(out, jp, s); err != nil {
				return err
			}
			if len(ch) == 0 {
				out.Flush() // show each burst as it ends
			}
		}
	}
}

// printSeen writes one message or loss, as text or (jp not nil) JSON.
func printSeen(out *bufio.Writer, jp *jsonPrinter, s seen) error {
	if s.lost != nil {
		if jp != nil {
			b, _ := json.Marshal(struct {
				Lost   uint64 `json:"lost"`
				Reason string `json:"reason"`
			}{s.lost.Lost, s.lost.Reason})
			_, err := fmt.Fprintf(out, "%s\n", b)
			return err
		}
		_, err := fmt.Fprintf(out, "-- lost %d messages: %s\n", s.lost.Lost, s.lost.Reason)
		return err
	}
	m, nfds := monitored(s.m)
	if jp != nil {
		_, err := out.Write(jp.messageFDs(m, nfds))
		return err
	}
	_, err := fmt.Fprintf(out, "%s %s\n", describeFDs(m, nfds), printable(m.Data))
	return err
}

// monitored takes the broker's Bus-FDs field off m and returns the count
// it gives. The broker appends it, as the last field, to a monitor's copy
// of a message with descriptors, and of one whose sender set a Bus-FDs
// itself, which thus cannot pass for it; without it the message had none.
func monitored(m *clientlib.Msg) (*clientlib.Msg, int) {
	last := len(m.Header) - 1
	if last < 0 || m.Header[last].Key != wire.FDsHeader {
		return m, 0
	}
	n, err := strconv.Atoi(m.Header[last].Value)
	if err != nil {
		return m, 0
	}
	m.Header = m.Header[:last]
	return m, n
}
