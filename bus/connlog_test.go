package bus

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// logBuffer collects a Server's log lines.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	summary chan struct{} // closed once a summary of suppressed lines is written
	wrote   chan struct{} // signalled after each write
}

func newLogBuffer() *logBuffer {
	return &logBuffer{summary: make(chan struct{}), wrote: make(chan struct{}, 1)}
}

// await waits for a line containing every one of words, and returns those
// there are then.
func (b *logBuffer) await(t *testing.T, words ...string) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if l := b.lines(words...); len(l) > 0 {
			return l
		}
		select {
		case <-b.wrote:
		case <-timeout:
			t.Fatalf("no line with %q in the log", words)
		}
	}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bytes.Contains(p, []byte("lines suppressed")) && !bytes.Contains(b.buf.Bytes(), []byte("lines suppressed")) {
		close(b.summary)
	}
	defer func() {
		select {
		case b.wrote <- struct{}{}:
		default:
		}
	}()
	return b.buf.Write(p)
}

// summed returns the count of a summary line.
func summed(t *testing.T, line string) int {
	t.Helper()
	var n int
	i := strings.Index(line, " lines=")
	if i < 0 {
		t.Fatalf("summary %q has no count", line)
	}
	fmt.Sscan(line[i+len(" lines="):], &n)
	return n
}

// lines returns the lines logged so far that contain every one of words.
func (b *logBuffer) lines(words ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		ok := l != ""
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

func withLog(b *logBuffer) func(*Config) {
	return func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(b, nil)) }
}

// The bucket lets a burst through, then its rate, and counts the lines it
// holds back.
func TestLogBucket(t *testing.T) {
	b := logBucket{what: "test lines"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t0 := time.Unix(1000, 0)
	for i := range connLogBurst {
		if !b.take(t0, log) {
			t.Fatalf("line %d of the burst held back", i)
		}
	}
	for range 5 {
		if b.take(t0, log) {
			t.Fatal("a line past the burst went through")
		}
	}
	if !b.take(t0.Add(time.Second/connLogRate), log) {
		t.Fatal("no line after a token's time")
	}
	if b.take(t0.Add(time.Second/connLogRate), log) {
		t.Fatal("two lines went through for one token")
	}
	b.mu.Lock()
	held, due := b.held, b.report != nil && b.report.Stop() // the test summarizes instead
	b.mu.Unlock()
	if held != 6 || !due {
		t.Fatalf("%d lines held, summary due %v; want 6 and a summary due", held, due)
	}
	logs := newLogBuffer()
	b.summarize(slog.New(slog.NewTextHandler(logs, nil)))
	if l := logs.lines("lines suppressed"); len(l) != 1 || summed(t, l[0]) != 6 {
		t.Fatalf("summary %q; want one saying 6", l)
	}
}

// A connection's open and close are a line each, at info, saying who and
// why; a shutdown is a reason.
func TestConnLines(t *testing.T) {
	logs := newLogBuffer()
	srv, path := testBroker(t, withLog(logs))
	w := subscriber(t, path, "$SYS.conn.down.>")
	c := connectNamed(t, path, "logged")
	c.sock.Close()
	nextConnEvent(t, w, wire.SysConnDown, c)
	id := fmt.Sprintf("conn=%d ", c.info.ConnID)
	who := fmt.Sprintf("pid=%d uid=%d", os.Getpid(), os.Getuid())
	if l := logs.lines(id); len(l) != 2 ||
		!strings.Contains(l[0], `msg="connection opened"`) || !strings.Contains(l[0], who) || !strings.Contains(l[0], "client=logged") ||
		!strings.Contains(l[1], `msg="connection closed"`) || !strings.Contains(l[1], who) || !strings.Contains(l[1], "reason=normal") {
		t.Fatalf("lines of conn %d:\n%s", c.info.ConnID, strings.Join(l, "\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	id = fmt.Sprintf("conn=%d ", w.info.ConnID)
	if l := logs.lines(id, `msg="connection closed"`, "reason=shutdown"); len(l) != 1 {
		t.Fatalf("lines of conn %d: %q; want one saying it closed for the shutdown", w.info.ConnID, logs.lines(id))
	}
}

// A flood of connections is not a flood of lines: past the burst, lines
// are held back, and a summary line says how many were.
func TestConnLinesAreRateBounded(t *testing.T) {
	logs := newLogBuffer()
	_, path := testBroker(t, withLog(logs))
	w := subscriber(t, path, "$SYS.conn.down.>")
	start := time.Now()
	const n = 200
	for range n {
		c := connectRaw(t, path)
		c.sock.Close()
		nextConnEvent(t, w, wire.SysConnDown, c)
	}
	elapsed := time.Since(start).Seconds()
	bound := connLogBurst + int(elapsed*connLogRate) + int(elapsed) + 3 // and a summary a second
	lines := logs.lines("msg=\"connection ")
	if len(lines) > bound || len(lines) >= 2*n {
		t.Fatalf("%d connection lines for %d connections; want at most %d", len(lines), n, bound)
	}
	select {
	case <-logs.summary:
	case <-time.After(5 * time.Second):
		t.Fatalf("no line says how many were suppressed:\n%s", strings.Join(lines, "\n"))
	}
	// The first summary: under load the flood may outlast it, and later
	// lines go to the next one.
	if l := logs.lines(`msg="connection lines suppressed"`); len(l) == 0 || summed(t, l[0]) == 0 {
		t.Fatalf("summary %q; want a count of the lines held back", l)
	}
}

// A connection's once-only warnings (here its first permission denied)
// are rate-bounded across connections too: a client that connects, is
// refused, and reconnects in a loop makes a few lines and a summary.
func TestOnceLinesAreRateBounded(t *testing.T) {
	logs := newLogBuffer()
	_, path := testBroker(t, func(c *Config) {
		withPolicy(t, "deny any publish secret.>\nallow any publish >\nallow any subscribe >")(c)
		withLog(logs)(c)
	})
	start := time.Now()
	const n = 200
	for range n {
		c := connectRaw(t, path)
		c.pub("secret.x", "x")
		c.expectErr(wire.CodePermissionDenied, `publish to "secret.x" denied by rule at line 1`)
		c.sock.Close()
	}
	elapsed := time.Since(start).Seconds()
	bound := connLogBurst + int(elapsed*connLogRate) + 1
	if lines := logs.lines(`msg="permission denied`); len(lines) > bound || len(lines) == 0 {
		t.Fatalf("%d permission-denied lines for %d connections; want some, at most %d", len(lines), n, bound)
	}
	if l := logs.await(t, `msg="once-per-connection warning lines suppressed"`); summed(t, l[0]) == 0 {
		t.Fatalf("summary %q; want a count of the lines held back", l)
	}
}

// Shutdown logs the summary of the lines held back itself: no timer of
// the server's outlives it to log after it has returned.
func TestShutdownSummarizesHeldLines(t *testing.T) {
	logs := newLogBuffer()
	srv, path := testBroker(t, withLog(logs))
	for range connLogBurst + 8 {
		connectRaw(t, path) // a line each, past the burst held back
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv.connLines.mu.Lock()
	armed := srv.connLines.report != nil
	srv.connLines.mu.Unlock()
	if l := logs.lines(`msg="connection lines suppressed"`); armed || len(l) == 0 {
		t.Fatalf("after Shutdown: summary timer armed %v, summaries %q; want none armed and the summary logged", armed, l)
	}
}
