package bus

import (
	"log/slog"
	"sync"
	"time"
)

// Connection lines: at info, one line when a connection's handshake is
// done and one when it closes, saying who and why; and at warn, the lines
// a connection gets at most once (its first budget refusal, its first
// permission denied, ...: noteOnce). A client opening connections in a
// loop must not flood the log with them, so each kind shares a token
// bucket across connections: connLogBurst lines at once, then connLogRate
// a second. The lines it holds back are counted, and connLogSummary after
// the first of them one line says how many there were.
const (
	connLogBurst   = 32
	connLogRate    = 8 // lines a second, once the burst is spent
	connLogSummary = time.Second
)

// logBucket is a token bucket for log lines.
type logBucket struct {
	what   string // the lines it bounds, for the summary
	mu     sync.Mutex
	tokens float64
	last   time.Time
	held   int
	report *time.Timer // the summary of the lines held, once some are; nil if none
}

// take reports whether a line may be logged now. If not, it counts it,
// and makes sure a summary will be logged to log.
func (b *logBucket) take(now time.Time, log *slog.Logger) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = connLogBurst
	} else {
		b.tokens = min(connLogBurst, b.tokens+now.Sub(b.last).Seconds()*connLogRate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.held++
	if b.report == nil {
		// A timer, not the next line: after a flood there may be none.
		b.report = time.AfterFunc(connLogSummary, func() { b.summarize(log) })
	}
	return false
}

// summarize logs how many lines were held back since the last summary.
func (b *logBucket) summarize(log *slog.Logger) {
	b.mu.Lock()
	n := b.held
	b.held, b.report = 0, nil
	b.mu.Unlock()
	log.Info(b.what+" suppressed", "lines", n, "in", connLogSummary)
}

// flush logs the summary of the lines held back now, if one is due, so
// that its timer does not outlive Shutdown. One whose timer has fired
// already is being logged by it.
func (b *logBucket) flush(log *slog.Logger) {
	b.mu.Lock()
	due := b.report != nil && b.report.Stop()
	b.mu.Unlock()
	if due {
		b.summarize(log)
	}
}

// logConn logs one connection line at info, if the bucket lets it.
func (c *conn) logConn(msg string, args ...any) {
	if c.srv.connLines.take(time.Now(), c.srv.log) {
		c.log.Info(msg, args...)
	}
}
