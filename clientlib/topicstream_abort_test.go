package clientlib

// ReadLine's state machine against a model, the end of
// an aborted topic stream, and Accept against Close.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// chunkReader returns its data in random pieces, now and then a timeout
// instead (the way a deadline does), and io.EOF at the end, sometimes with
// the last bytes.
type chunkReader struct {
	data []byte
	rnd  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.rnd.IntN(8) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := min(len(p), len(c.data), 1+c.rnd.IntN(200<<10))
	if i := bytes.IndexByte(c.data[:n], '\r'); i >= 0 && c.rnd.IntN(2) == 0 {
		n = i + 1 // end a piece right after a "\r"
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.rnd.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// wantLines is what ReadLine's doc promises for in: each line without its
// "\n" or "\r\n", or bufio.ErrTooLong (as "") for one longer than
// MaxLineLen; a last line without a newline counts if it is not empty.
func wantLines(in []byte) (lines []string, tooLong []bool) {
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		var l []byte
		if i < 0 {
			l, in = in, nil
		} else {
			l, in = in[:i], in[i+1:]
			l = bytes.TrimSuffix(l, []byte("\r"))
		}
		if len(l) > MaxLineLen {
			lines, tooLong = append(lines, ""), append(tooLong, true)
		} else {
			lines, tooLong = append(lines, string(l)), append(tooLong, false)
		}
	}
	return lines, tooLong
}

// ReadLine, read through random pieces and timeouts, gives exactly the
// lines of the model: lines at MaxLineLen with "\n" and "\r\n", one byte
// over, far over, a "\r" split from its "\n", lines after skipped ones,
// an overlong last line at EOF.
func TestReadLineModel(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	M := MaxLineLen
	cases := map[string]string{
		"exact LF":        x(M) + "\nafter\n",
		"exact CRLF":      x(M) + "\r\nafter\n",
		"one over LF":     x(M+1) + "\nafter\n",
		"one over CRLF":   x(M+1) + "\r\nafter\n",
		"exact CR CRLF":   x(M) + "\r\r\nafter\n",
		"far over":        x(3*M+12345) + "\r\nafter\r\n" + x(M) + "\r\n" + x(M+2) + "\nlast",
		"over at EOF":     "a\n" + x(M+70<<10),
		"over then empty": x(M+1) + "\n\n\nz\n",
		"exact at EOF":    "a\r\n" + x(M),
		"two over in row": x(M+1) + "\n" + x(2*M) + "\r\nok\r\n",
		"exact minus CR":  x(M-1) + "\r\r\n" + "q\n",
		"short lines mix": "a\r\nb\n\r\n\rc\r\r\n" + x(70<<10) + "\n",
		"exact CR no LF":  x(M) + "\ry\n",
		"exact CR at EOF": x(M) + "\r",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(6) {
				want, tooLong := wantLines([]byte(in))
				f := MakeFile(&chunkReader{data: []byte(in), rnd: rand.New(rand.NewPCG(seed, 7))}, nil)
				for i := 0; ; {
					line, err := f.ReadLine()
					if errors.Is(err, os.ErrDeadlineExceeded) {
						continue
					}
					if err == io.EOF {
						if i != len(want) {
							t.Fatalf("seed %d: io.EOF after %d lines; want %d", seed, i, len(want))
						}
						break
					}
					if i >= len(want) {
						t.Fatalf("seed %d: line %d (%d bytes, %v) beyond the %d lines", seed, i, len(line), err, len(want))
					}
					if tooLong[i] {
						if !errors.Is(err, bufio.ErrTooLong) {
							t.Fatalf("seed %d: line %d: %d bytes, %v; want bufio.ErrTooLong", seed, i, len(line), err)
						}
					} else if err != nil || line != want[i] {
						t.Fatalf("seed %d: line %d: %d bytes %q..., %v; want %d bytes %q...", seed, i,
							len(line), line[:min(len(line), 10)], err, len(want[i]), want[i][:min(len(want[i]), 10)])
					}
					i++
				}
			}
		})
	}
}

// topicPair returns a writer on topic and a reader subscribed to it.
func topicPair(t *testing.T, topic string) (*TopicWriter, *TopicReader) {
	t.Helper()
	path, _ := startBus(t)
	wc, rc := connect(t, path), connect(t, path)
	r, err := rc.NewTopicReader(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w, err := wc.NewTopicWriter(topic)
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

// readAll reads r to its end, giving up (and closing r) after d.
func readAll(t *testing.T, r *TopicReader, d time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		_, err := io.Copy(&buf, r)
		done <- result{buf.Bytes(), err}
	}()
	select {
	case res := <-done:
		return res.b, res.err
	case <-time.After(d):
		r.Close()
		<-done
		t.Fatalf("the reader still waits %v after the writer ended the stream", d)
		return nil, nil
	}
}

// CloseWithError with an error whose text is empty still aborts the
// stream: the reader gets ErrStreamAborted. Before the fix the empty reason
// ended the stream as complete (io.EOF).
func TestCloseWithErrorEmptyText(t *testing.T) {
	w, r := topicPair(t, "abort.empty")
	w.Write([]byte("partial"))
	if err := w.CloseWithError(errors.New("")); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, r, 10*time.Second)
	if string(got) != "partial" {
		t.Errorf("read %q", got)
	}
	if !errors.Is(err, ErrStreamAborted) {
		t.Errorf("CloseWithError(errors.New(\"\")): the reader ended with %v; want ErrStreamAborted", err)
	}
}

// CloseWithError with a long reason (here 64 KiB, the broker's default
// MaxHeaders) cuts the reason to fit, and the readers get ErrStreamAborted.
// Before the fix the end marker failed with ErrTooLarge, and the readers
// waited for ever.
func TestCloseWithErrorLongReason(t *testing.T) {
	w, r := topicPair(t, "abort.long")
	w.Write([]byte("partial"))
	cerr := w.CloseWithError(errors.New(strings.Repeat("e", 64<<10)))
	if cerr != nil {
		t.Errorf("CloseWithError with a 64 KiB reason: %v; want nil (the reason cut to fit)", cerr)
	}
	if err := w.Close(); err != nil {
		t.Logf("Close after it: %v", err)
	}
	_, err := readAll(t, r, 10*time.Second)
	if !errors.Is(err, ErrStreamAborted) {
		t.Errorf("reader: %v; want ErrStreamAborted", err)
	}
}

// The end marker may carry data: the reader returns it, then the abort
// (the writer never sends one, but the protocol allows it).
func TestAbortMarkerWithData(t *testing.T) {
	path, _ := startBus(t)
	wc, rc := connect(t, path), connect(t, path)
	r, err := rc.NewTopicReader(testCtx(t), "abort.data")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hdr := HeaderOf(StreamSeqHeader, "0", StreamEndHeader, "1", StreamErrorHeader, "boom")
	if err := wc.PublishMsg(&Msg{Topic: "abort.data", Header: hdr, Data: []byte("tail")}); err != nil {
		t.Fatal(err)
	}
	flush(t, wc)
	got, err := readAll(t, r, 10*time.Second)
	if string(got) != "tail" || !errors.Is(err, ErrStreamAborted) {
		t.Fatalf("read %q, %v; want \"tail\", ErrStreamAborted", got, err)
	}
	if p := make([]byte, 8); true {
		if n, err := r.Read(p); n != 0 || !errors.Is(err, ErrStreamAborted) {
			t.Fatalf("Read after: %d, %v; want 0, ErrStreamAborted again", n, err)
		}
	}
}

// Close racing Accept, many times: Accept always reports net.ErrClosed
// (the subscription's end by Drain is not passed on as a refusal), and
// Close returns nil.
func TestAcceptVersusClose(t *testing.T) {
	path, _ := startBus(t)
	srv := connect(t, path)
	for i := range 30 {
		l, err := srv.Listen("race")
		if err != nil {
			t.Fatal(err)
		}
		flush(t, srv)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // the watchdog
				defer cancel()
				_, err := l.AcceptStream(ctx)
				errs <- err
			}()
		}
		if i%2 == 0 {
			time.Sleep(time.Millisecond)
		}
		if err := closeWithin(t, l, closeWait/2); err != nil {
			t.Errorf("Close: %v", err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("round %d: Accept racing Close: %v; want net.ErrClosed", i, err)
			}
		}
		// After Close, Accept keeps saying net.ErrClosed.
		for range 20 {
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close: %v; want net.ErrClosed", err)
			}
		}
	}
}

// http.Serve on a listener the broker refused returns the refusal at once:
// the error is not a net.Error, so Serve does not retry.
func TestServeOnRefusedListener(t *testing.T) {
	_, l := refusedListener(t)
	served := make(chan error, 1)
	go func() { served <- http.Serve(l, http.NotFoundHandler()) }()
	select {
	case err := <-served:
		var se *ServerError
		if !errors.As(err, &se) {
			t.Errorf("Serve: %v; want the broker's refusal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("http.Serve on a refused listener still running")
	}
	if err := closeWithin(t, l, closeWait/2); err != nil {
		t.Errorf("Close after the refusal: %v", err)
	}
}
