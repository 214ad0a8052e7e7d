package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
)

func subFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	count := fs.Int("count", 0, "exit after N messages (0: run until interrupted)")
	raw := fs.Bool("raw", false, "print only each payload and a newline")
	asJSON := fs.Bool("json", false, "print each message as one line of JSON: topic, origin, reply, headers, fds and payload (msgpack decoded)")
	catFDs := fs.Bool("cat-fds", false, "after each payload, copy the content of every received file to stdout")
	group := fs.String("queue", "", "join queue `GROUP`: each message goes to one member of the group")
	retained := fs.Bool("retained", false, "print the values the bus retains for the matching topics first (marked retained), then the updates")
	outDir := fs.String("o", "", "write each payload to a file of its own in `DIR` (made if missing), named 000001-TOPIC, 000002-TOPIC, ... on from the highest number there; print its path and the message's line")
	return func(ctx context.Context, e *env, patterns []string) error {
		if len(patterns) == 0 {
			return usageError(lookup("sub"))
		}
		if *count < 0 {
			return cli.Usagef("-count %d: must not be negative (0: run until interrupted)", *count)
		}
		if *asJSON && (*raw || *catFDs) {
			return cli.Usagef("-json prints one JSON value a line: it does not go with -raw or -cat-fds")
		}
		if *outDir != "" && (*asJSON || *raw) {
			return cli.Usagef("-o writes the payloads to files: it does not go with -raw or -json")
		}
		var opts []clientlib.SubOption
		var pw *payloadWriter
		if *outDir != "" {
			var err error
			if pw, err = newPayloadWriter(*outDir); err != nil {
				return err
			}
			// A payload in a memfd comes as the file, copied to DIR by the
			// kernel: none of it passes through bus's memory.
			opts = append(opts, clientlib.PayloadFiles())
		}
		if *retained {
			if *group != "" {
				return cli.Usagef("-retained: a queue group member gets no retained values (-queue)")
			}
			opts = append(opts, clientlib.WithRetained())
		}
		e.checksRefusals, e.waitsForBus = true, true
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		// Ends the handlers below, which may be waiting on msgs, when we return.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		msgs := make(chan *clientlib.Msg, 1024)
		forward := func(m *clientlib.Msg) {
			select {
			case msgs <- m:
			case <-ctx.Done():
				m.CloseFiles()
			}
		}
		for _, p := range patterns {
			if _, err := c.QueueSubscribe(p, *group, forward, opts...); err != nil {
				return err
			}
		}
		if err := e.refusedAfterFlush(ctx, c); err != nil { // the subscriptions are in place from here on
			return err
		}
		fmt.Fprintf(e.stderr, "bus: subscribed to %q%s on %s\n", patterns, groupNote(*group), e.socketPath())
		var jp *jsonPrinter
		if *asJSON {
			jp = newJSONPrinter(e.stderr)
		}
		out := bufio.NewWriter(e.stdout)
		defer out.Flush()
		for n := 0; *count == 0 || n < *count; n++ {
			var m *clientlib.Msg
			select {
			case m = <-msgs:
			case <-ctx.Done():
				return nil // interrupted: a normal way to stop
			case <-e.refused: // a restarted broker would not restore it
				return e.subscriptionRefused()
			case <-e.closed: // -no-reconnect, or an error not worth reconnecting after
				return fmt.Errorf("the connection to the bus ended: %w", c.Err())
			}
			var err error
			switch {
			case jp != nil:
				_, err = out.Write(jp.message(m))
			case pw != nil:
				err = saveMsg(out, pw, m, *catFDs)
			default:
				err = printMsg(out, m, *raw, *catFDs)
			}
			m.CloseFiles()
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				out.Flush() // show each burst as it ends
			}
		}
		return nil
	}
}

// groupNote says which queue group a subscription joined, if any.
func groupNote(group string) string {
	if group == "" {
		return ""
	}
	return fmt.Sprintf(" in queue group %q", group)
}

// printMsg writes one message: a readable line, or with raw the payload.
func printMsg(w *bufio.Writer, m *clientlib.Msg, raw, catFDs bool) error {
	if raw {
		w.Write(m.Data)
		w.WriteByte('\n')
	} else {
		fmt.Fprintf(w, "%s %s\n", describe(m), printable(m.Data))
	}
	if catFDs {
		for i, f := range m.Files {
			if err := catFile(w, f); err != nil {
				return fmt.Errorf("reading file %d of a message on %s: %w", i, m.Topic, err)
			}
		}
	}
	return nil
}

// saveMsg writes m's payload to its file in pw's directory and prints the
// file's path and the line sub prints for m, with the payload's size.
func saveMsg(w *bufio.Writer, pw *payloadWriter, m *clientlib.Msg, catFDs bool) error {
	path, err := pw.write(m)
	if err != nil {
		return err
	}
	size := int64(len(m.Data))
	if m.PayloadFile != nil {
		st, err := m.PayloadFile.Stat()
		if err != nil {
			return err
		}
		size = st.Size()
	}
	fmt.Fprintf(w, "%s %s\n", path, describeSize(m, len(m.Files), size))
	if catFDs {
		for i, f := range m.Files {
			if err := catFile(w, f); err != nil {
				return fmt.Errorf("reading file %d of a message on %s: %w", i, m.Topic, err)
			}
		}
	}
	return nil
}

// catFile copies a received file from its start: the descriptor shares its
// offset with the sender's, so reading at offsets keeps every receiver's
// view whole. Pipes and sockets, which have no offsets, are read as they
// come.
func catFile(w io.Writer, f *os.File) error {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		_, err := io.Copy(w, io.NewSectionReader(f, 0, st.Size()))
		return err
	}
	_, err := io.Copy(w, f)
	return err
}

// describe sums up a message but for its payload: topic, size, origin,
// files, reply topic and headers.
func describe(m *clientlib.Msg) string { return describeFDs(m, len(m.Files)) }

// describeFDs is describe for a message that carried nfds files, which a
// monitor is told of but does not get.
func describeFDs(m *clientlib.Msg, nfds int) string {
	return describeSize(m, nfds, int64(len(m.Data)))
}

// describeSize is describeFDs for a payload of size bytes, which may be in
// a file rather than in m.Data.
func describeSize(m *clientlib.Msg, nfds int, size int64) string {
	s := fmt.Sprintf("%s %dB pid=%d uid=%d conn=%d fds=%d", m.Topic, size, m.Origin.PID, m.Origin.UID, m.Origin.Conn, nfds)
	if m.Retained() {
		s += " retained"
	}
	if m.Reply != "" {
		s += " reply=" + m.Reply
	}
	if len(m.Header) > 0 {
		kv := make([]string, len(m.Header))
		for i, f := range m.Header { // in order, a repeated key as often as it came
			kv[i] = f.Key + "=" + printable([]byte(f.Value))
		}
		s += " [" + strings.Join(kv, " ") + "]"
	}
	return s
}

// printable shows a payload as text when it is, and quoted otherwise.
func printable(b []byte) string {
	if utf8.Valid(b) {
		ok := true
		for _, r := range string(b) {
			if !unicode.IsPrint(r) && r != '\t' {
				ok = false
				break
			}
		}
		if ok {
			return string(b)
		}
	}
	return strconv.Quote(string(b))
}
