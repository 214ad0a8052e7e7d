package clientlib

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// Topic streams carry bytes over a topic: a TopicWriter cuts what is
// written into messages, numbered in a header, and a TopicReader reads
// their payloads back as one byte stream. Unlike a direct stream they go
// through the broker, to every reader subscribed, so one writer can feed
// many readers; but like any subscription a reader that falls further
// behind than its queue limits loses messages, and then fails with
// ErrStreamGap rather than return bytes with a hole in them. A writer that
// cannot finish ends with CloseWithError, and its readers get
// ErrStreamAborted; a writer that dies without either leaves its readers
// waiting (Close them).

// Headers of topic stream messages.
const (
	// StreamSeqHeader numbers a topic stream's messages from 0.
	StreamSeqHeader = "Stream-Seq"
	// StreamEndHeader marks the message that ends a topic stream (an empty
	// one, after the last bytes).
	StreamEndHeader = "Stream-End"
)

// TopicChunk is the most bytes a TopicWriter puts in one message, unless
// the bus takes less.
const TopicChunk = 64 << 10

// TopicWriter writes a byte stream to a topic. Writes are buffered: a
// message goes out when TopicChunk bytes are waiting, on Flush, and on
// Close, which also ends the stream. A TopicWriter is for one goroutine.
type TopicWriter struct {
	c      *Conn
	topic  string
	buf    []byte
	hdrs   wire.Headers
	seq    uint64
	err    error
	closed bool
}

// NewTopicWriter starts a stream on topic. Readers must be subscribed
// (NewTopicReader) before the first message goes out.
func (c *Conn) NewTopicWriter(topic string) (*TopicWriter, error) {
	if err := topics.ValidTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTopic, err)
	}
	size := min(TopicChunk, int(c.info.Load().MaxPayload))
	return &TopicWriter{c: c, topic: topic, buf: make([]byte, 0, size)}, nil
}

// Write buffers p, sending a message each time TopicChunk bytes are
// waiting.
func (w *TopicWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("%w: topic stream %q", ErrClosed, w.topic)
	}
	written := 0
	for w.err == nil && len(p) > 0 {
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		written += n
		if len(w.buf) == cap(w.buf) {
			w.send(false, "")
		}
	}
	return written, w.err
}

// Flush sends what is buffered.
func (w *TopicWriter) Flush() error {
	if len(w.buf) > 0 {
		w.send(false, "")
	}
	return w.err
}

// Close sends what is buffered and ends the stream: readers then get
// io.EOF. Writing after Close fails with ErrClosed.
func (w *TopicWriter) Close() error { return w.end("") }

// CloseWithError sends what is buffered and ends the stream as cut short,
// saying why: readers get the bytes before it, then an error matching
// ErrStreamAborted that quotes why. For a writer whose source failed.
func (w *TopicWriter) CloseWithError(why error) error {
	text := "aborted"
	if why != nil && why.Error() != "" {
		text = why.Error()
	}
	// The reason travels in a header: cut to fit, so the end marker
	// always goes out.
	if limit := min(maxAbortReason, int(w.c.info.Load().MaxHeaders)-64); len(text) > limit {
		text = strings.ToValidUTF8(text[:max(limit, 1)], "")
	}
	return w.end(text)
}

// maxAbortReason bounds the reason CloseWithError sends.
const maxAbortReason = 1 << 10

// end sends the buffer and the end marker, with a Stream-Error header if
// why is not empty.
func (w *TopicWriter) end(why string) error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.Flush()
	w.send(true, why)
	return w.err
}

// send publishes the buffer as the next message; end marks it the last,
// with why saying what cut the stream short, if anything.
func (w *TopicWriter) send(end bool, why string) {
	if w.err != nil {
		return
	}
	w.hdrs = wire.AppendField(w.hdrs[:0], StreamSeqHeader, strconv.FormatUint(w.seq, 10))
	if end {
		w.hdrs = wire.AppendField(w.hdrs, StreamEndHeader, "1")
		if why != "" {
			w.hdrs = wire.AppendField(w.hdrs, StreamErrorHeader, why)
		}
	}
	// The payload is copied into the connection's output: the buffer is
	// free again once publish returns.
	if err := w.c.publish(context.Background(), w.topic, "", w.hdrs, w.buf, nil, nil, false, nil, 0); err != nil {
		w.err = fmt.Errorf("bus: topic stream %q: %w", w.topic, err)
		return
	}
	w.seq++
	w.buf = w.buf[:0]
}

// TopicReader reads the byte stream a TopicWriter writes to a topic. It
// returns io.EOF after the writer closes the stream, and ErrStreamGap if
// it missed any of it. A TopicReader is for one goroutine.
type TopicReader struct {
	closed atomic.Bool // Close may come from another goroutine, to end a Read
	sub    *Subscription
	// wait is what Next waits with: the broker's report of lost messages
	// cancels it, so that a Read waiting for the next message fails at
	// once rather than wait for one that may never come.
	wait     context.Context
	stopWait context.CancelFunc
	topic    string
	rest     []byte // unread bytes of the current message
	next     uint64 // the Stream-Seq expected next
	writer   uint64 // the writer's connection, from the first message
	err      error
}

// NewTopicReader subscribes to the stream on topic and waits, until ctx
// ends, for the broker to confirm: a writer that starts after it returns
// is read from its first byte.
func (c *Conn) NewTopicReader(ctx context.Context, topic string) (*TopicReader, error) {
	if err := topics.ValidTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTopic, err)
	}
	wait, stopWait := context.WithCancel(context.Background())
	sub, err := c.subscribeWith(topic, "", subConfig{onLoss: stopWait})
	if err != nil {
		stopWait()
		return nil, err
	}
	if err := c.Flush(ctx); err != nil {
		sub.Unsubscribe()
		stopWait()
		return nil, err
	}
	return &TopicReader{sub: sub, topic: topic, wait: wait, stopWait: stopWait}, nil
}

// Read reads the stream's next bytes, waiting for them.
func (r *TopicReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, fmt.Errorf("%w: topic stream %q", ErrClosed, r.topic)
	}
	for len(r.rest) == 0 {
		if err := r.advance(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// WriteTo writes the rest of the stream to w, each message's payload as it
// comes, without copying it through a buffer; io.Copy uses it.
func (r *TopicReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.rest) > 0 {
			n, err := w.Write(r.rest)
			total += int64(n)
			r.rest = r.rest[n:]
			if err != nil {
				return total, err
			}
		}
		if err := r.advance(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

// advance takes the next message of the stream into rest.
func (r *TopicReader) advance() error {
	if r.closed.Load() {
		return fmt.Errorf("%w: topic stream %q", ErrClosed, r.topic)
	}
	if r.err != nil {
		return r.err
	}
	// Numbers alone miss a dropped tail, the end marker with it: the
	// reader would wait for ever. The subscription's queue drops messages
	// only while it is full, so its drops are seen here before the reader
	// could wait; the broker's report of its own ends the wait.
	if err := r.checkLoss(); err != nil {
		return err
	}
	m, err := r.sub.Next(r.wait)
	if err != nil {
		if r.closed.Load() { // Close ends the wait too
			return fmt.Errorf("%w: topic stream %q", ErrClosed, r.topic)
		}
		if err := r.checkLoss(); err != nil {
			return err
		}
		r.err = fmt.Errorf("bus: topic stream %q: %w", r.topic, err)
		return r.err
	}
	m.CloseFiles()
	seq, perr := strconv.ParseUint(m.Header.Get(StreamSeqHeader), 10, 64)
	switch first := r.writer == 0; {
	case perr != nil:
		return r.stop(fmt.Errorf("%w: topic %q carries a message that is not part of a stream (%s %q): one topic, one stream",
			ErrStreamGap, r.topic, StreamSeqHeader, m.Header.Get(StreamSeqHeader)))
	case first && seq != 0:
		return r.stop(fmt.Errorf("%w: topic %q: the stream began before this reader (its first message was number %d): make the reader before the writer starts",
			ErrStreamGap, r.topic, seq))
	case !first && m.Origin.Conn != r.writer:
		return r.stop(fmt.Errorf("%w: topic %q: a second writer (connection %d) joined the stream of connection %d: one writer per topic",
			ErrStreamGap, r.topic, m.Origin.Conn, r.writer))
	case seq != r.next:
		return r.stop(fmt.Errorf("%w: topic %q: message %d arrived when %d was due: the reader fell behind and its subscription dropped some %s",
			ErrStreamGap, r.topic, seq, r.next, fallBehindHint))
	}
	r.writer, r.next, r.rest = m.Origin.Conn, seq+1, m.Data
	if _, end := m.Header.Lookup(StreamEndHeader); end {
		err := io.EOF
		if why, aborted := m.Header.Lookup(StreamErrorHeader); aborted {
			err = fmt.Errorf("%w: topic %q: %s", ErrStreamAborted, r.topic, why)
		}
		r.stop(err) // the bytes in rest are still read first
	}
	return nil
}

// fallBehindHint says what to do about a reader that fell behind.
const fallBehindHint = "(read faster, or raise the connection's WithSubscriptionLimits, or the broker's MaxPending)"

// checkLoss ends the stream with ErrStreamGap if its subscription has lost
// messages.
func (r *TopicReader) checkLoss() error {
	if n := r.sub.Dropped(); n > 0 {
		return r.stop(fmt.Errorf("%w: topic %q: the reader fell behind and its subscription lost %d messages %s",
			ErrStreamGap, r.topic, n, fallBehindHint))
	}
	return nil
}

// stop ends the stream with err: every later read returns it.
func (r *TopicReader) stop(err error) error {
	r.err = err
	r.sub.Unsubscribe()
	r.stopWait()
	return err
}

// Close stops reading the stream; a Read waiting in another goroutine
// returns an error that matches ErrClosed.
func (r *TopicReader) Close() error {
	r.closed.Store(true)
	err := r.sub.Unsubscribe()
	r.stopWait()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}
