package activation

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"sync"
	"time"
)

// Bounds on what a service's output adds to busd's log.
const (
	// MaxLineLen is the longest line of output logged, in bytes; the rest
	// of a longer line is dropped, and the line marked truncated.
	MaxLineLen = 1024
	// OutputBurst is how many lines a service may write at once, and
	// OutputRate how many a second after that: the lines beyond are
	// dropped, and their number logged.
	OutputBurst = 100
	OutputRate  = 10
)

// limiter is a token bucket of lines, shared by a process's stdout and
// stderr.
type limiter struct {
	clock   func() time.Time
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int // lines dropped since the last reported
}

func newLimiter(clock func() time.Time) *limiter {
	return &limiter{clock: clock, tokens: OutputBurst, last: clock()}
}

// take reports whether one more line may be logged, and how many were
// dropped before it, not yet reported.
func (l *limiter) take() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	l.tokens = min(OutputBurst, l.tokens+now.Sub(l.last).Seconds()*OutputRate)
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// flushDropped returns the lines dropped not yet reported.
func (l *limiter) flushDropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.dropped
	l.dropped = 0
	return n
}

// copyOutput logs each line p writes on stream (read from r) until the
// pipe's end, or until Close closes r; it closes r.
func (a *Activator) copyOutput(p *proc, stream string, r *os.File, lim *limiter) {
	defer r.Close()
	br := bufio.NewReaderSize(r, MaxLineLen)
	skipping := false // the rest of a line too long
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && !skipping {
			a.logLine(p, stream, line, errors.Is(err, bufio.ErrBufferFull), lim)
		}
		skipping = errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !skipping {
			return
		}
	}
}

// logLine logs one line of p's output, if the limiter lets it.
func (a *Activator) logLine(p *proc, stream string, line []byte, truncated bool, lim *limiter) {
	ok, dropped := lim.take()
	if !ok {
		return
	}
	if dropped > 0 {
		a.log.Warn("service output dropped", "service", p.e.svc.Name, "pid", p.pid, "lines", dropped)
	}
	text := strings.ToValidUTF8(strings.TrimRight(string(line), "\r\n"), "\uFFFD")
	attrs := []any{"service", p.e.svc.Name, "pid", p.pid, "stream", stream, "line", text}
	if truncated {
		attrs = append(attrs, "truncated", true)
	}
	a.log.Info("service output", attrs...)
}

// logDropped logs the lines of p's output dropped since the last report.
func (a *Activator) logDropped(p *proc, lim *limiter) {
	if n := lim.flushDropped(); n > 0 {
		a.log.Warn("service output dropped", "service", p.e.svc.Name, "pid", p.pid, "lines", n)
	}
}
