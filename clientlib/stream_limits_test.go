package clientlib

// The limits of streams and MakeFile: wildcard queue groups, values that
// end with the stream, lines at and over MaxLineLen.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// A queue group whose pattern matches _STREAM.N only through a wildcard,
// here a pool answering every request on the bus, does not take a dial to a
// name nobody listens on: DialStream fails with ErrNoListener. Before the
// fix the pool answered it, and DialStream returned a socket whose other end
// nobody read.
func TestDialToNobodyIgnoresWildcardQueueGroup(t *testing.T) {
	path, _ := startBus(t)
	cli, pool := connect(t, path), connect(t, path)
	s, err := pool.QueueSubscribe(">", "pool", func(m *Msg) {
		if m.Reply != "" {
			m.Respond([]byte("ok")) // a generic responder; it keeps m.Files open
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	flush(t, pool)
	sc, err := cli.DialStream(testCtx(t), "nobody") // a round trip through the broker, however slow the machine
	if err == nil {
		sc.Close()
		t.Fatal("DialStream to a name nobody listens on succeeded: a queue group on \">\" answered the stream request")
	}
	if !errors.Is(err, ErrNoListener) {
		t.Fatalf("DialStream: %v; want ErrNoListener", err)
	}
}

// A value whose last bytes come together with io.EOF (allowed by
// io.Reader; net/http's body with a Content-Length does it) is read whole.
// The case arises when the final read of the value is a direct read by
// bufio, i.e. a 64 KiB step with the buffer empty. Before the fix ReadValue
// checked the error before the bytes and failed with io.ErrUnexpectedEOF.
func TestReadValueDataWithEOF(t *testing.T) {
	// Peek fills the 64 KiB buffer: 4 prefix bytes + 65532 value bytes;
	// the next step is then a direct 64 KiB read that ends the stream.
	payload := make([]byte, 65532+65536-5) // bin32 header is 5 bytes
	for i := range payload {
		payload[i] = byte(i)
	}
	enc, err := EncodeValue(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != 65532+65536 {
		t.Fatalf("encoded %d bytes; the test wants %d", len(enc), 65532+65536)
	}
	stream := binary.BigEndian.AppendUint32(nil, uint32(len(enc)))
	stream = append(stream, enc...)
	f := MakeFile(eofWithData{bytes.NewReader(stream)}, nil)
	var got []byte
	if err := f.ReadValue(&got); err != nil {
		t.Fatalf("ReadValue of a whole value: %v; want nil (the last bytes came with io.EOF)", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("value differs")
	}
}

// eofWithData returns io.EOF with the last bytes, as io.Reader allows.
type eofWithData struct{ r *bytes.Reader }

func (e eofWithData) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == nil && e.r.Len() == 0 {
		err = io.EOF
	}
	return n, err
}

// ReadValue across a deadline, mid prefix and mid value, with a value larger
// than the bufio buffer: what was read is kept.
func TestReadValueAcrossDeadlines(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	payload := bytes.Repeat([]byte("v"), 200<<10)
	enc, _ := EncodeValue(payload)
	stream := binary.BigEndian.AppendUint32(nil, uint32(len(enc)))
	stream = append(stream, enc...)
	f := MakeFile(b, nil)
	cuts := []int{2, 4 + 100, 4 + 70<<10, len(stream)}
	prev := 0
	var got []byte
	for i, cut := range cuts {
		// A write on a net.Pipe returns once the reader has taken its
		// bytes: the deadline expires while ReadValue, holding them,
		// waits for the rest. The last piece has no deadline but the
		// watchdog.
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		wrote := make(chan struct{})
		go func(p []byte) { a.Write(p); close(wrote) }(stream[prev:cut])
		prev = cut
		if i < len(cuts)-1 {
			go func() { <-wrote; b.SetReadDeadline(time.Now()) }()
		}
		err := f.ReadValue(&got)
		if i < len(cuts)-1 {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("cut %d: %v; want a timeout", i, err)
			}
			<-wrote
			continue
		}
		if err != nil {
			t.Fatalf("last: %v", err)
		}
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes; want %d", len(got), len(payload))
	}
}

// A zero-length value (never written by WriteValue) is a decode error, not
// io.EOF, and the stream goes on after it.
func TestReadValueZeroLength(t *testing.T) {
	stream := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0x07}
	f := MakeFile(bytes.NewReader(stream), nil)
	var v any
	if err := f.ReadValue(&v); !errors.Is(err, ErrDecode) {
		t.Fatalf("zero-length value: %v; want ErrDecode", err)
	}
	if err := f.ReadValue(&v); err != nil || v != uint64(7) && v != int64(7) {
		t.Fatalf("after it: %v, %v (%T)", v, err, v)
	}
	if err := f.ReadValue(&v); err != io.EOF {
		t.Fatalf("at the end: %v; want io.EOF", err)
	}
}

// Lines of MaxLineLen+1 and +2 bytes fail with bufio.ErrTooLong, as
// ReadLine's doc says. Before the fix the check allowed MaxLineLen+2 bytes
// whatever the line ended with.
func TestReadLineLimitIsMaxLineLen(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"+1 then \\n", strings.Repeat("x", MaxLineLen+1) + "\n"},
		{"+2 at EOF", strings.Repeat("x", MaxLineLen+2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, err := MakeFile(strings.NewReader(tc.in), nil).ReadLine()
			if !errors.Is(err, bufio.ErrTooLong) {
				t.Errorf("a line of %d bytes (MaxLineLen %d): len %d, err %v; want bufio.ErrTooLong",
					len(line), MaxLineLen, len(line), err)
			}
		})
	}
}

// After bufio.ErrTooLong the unread rest of the long line is skipped: the
// next ReadLine returns the line after it. Before the fix it returned the
// tail of the overlong line as a line of its own.
func TestReadLineAfterTooLongSkipsTail(t *testing.T) {
	in := strings.Repeat("x", MaxLineLen+100<<10) + "\nnext\n"
	f := MakeFile(strings.NewReader(in), nil)
	if _, err := f.ReadLine(); !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("err = %v; want bufio.ErrTooLong", err)
	}
	line, err := f.ReadLine()
	if err != nil || line != "next" {
		t.Errorf("after ErrTooLong, ReadLine = %d bytes of %q..., %v; want \"next\" (or ErrTooLong again), not the tail of the long line",
			len(line), line[:min(len(line), 8)], err)
	}
}
