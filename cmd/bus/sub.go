package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/busd/busd/clientlib"
)

func subFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	count := fs.Int("count", 0, "exit after N messages (0: run until interrupted)")
	raw := fs.Bool("raw", false, "print only each payload and a newline")
	catFDs := fs.Bool("cat-fds", false, "after each payload, copy the content of every received file to stdout")
	return func(ctx context.Context, e *env, patterns []string) error {
		if len(patterns) == 0 {
			return errors.New("usage: bus sub [-count N] [-raw] [-cat-fds] PATTERN...")
		}
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		msgs := make(chan *clientlib.Msg, 1024)
		for _, p := range patterns {
			if _, err := c.SubscribeChan(p, msgs); err != nil {
				return err
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = c.Flush(fctx) // the subscriptions are in place from here on
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "bus: subscribed to %q on %s\n", patterns, clientlib.ResolveSocket(e.socket, e.dir, e.name))
		out := bufio.NewWriter(e.stdout)
		defer out.Flush()
		for n := 0; *count == 0 || n < *count; n++ {
			var m *clientlib.Msg
			select {
			case m = <-msgs:
			case <-ctx.Done():
				return nil // interrupted: a normal way to stop
			}
			err := printMsg(out, m, *raw, *catFDs)
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

// printMsg writes one message: a readable line, or with raw the payload.
func printMsg(w *bufio.Writer, m *clientlib.Msg, raw, catFDs bool) error {
	if raw {
		w.Write(m.Data)
		w.WriteByte('\n')
	} else {
		fmt.Fprintf(w, "%s %dB pid=%d uid=%d fds=%d", m.Topic, len(m.Data), m.Origin.PID, m.Origin.UID, len(m.Files))
		if m.Reply != "" {
			fmt.Fprintf(w, " reply=%s", m.Reply)
		}
		if len(m.Header) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(m.Header)) {
				kv = append(kv, k+"="+printable([]byte(m.Header[k])))
			}
			fmt.Fprintf(w, " [%s]", strings.Join(kv, " "))
		}
		fmt.Fprintf(w, " %s\n", printable(m.Data))
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
