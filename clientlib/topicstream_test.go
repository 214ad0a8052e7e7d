package clientlib

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

func newTopicReader(t *testing.T, c *Conn, topic string) *TopicReader {
	t.Helper()
	r, err := c.NewTopicReader(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestTopicStreamReachesEveryReaderWhole(t *testing.T) {
	path, _ := startBus(t)
	wc := connect(t, path)
	readers := []*TopicReader{newTopicReader(t, connect(t, path), "logs.app"), newTopicReader(t, connect(t, path), "logs.app")}
	want := make([]byte, 3<<20+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	got := make([]chan []byte, len(readers))
	for i, r := range readers {
		got[i] = make(chan []byte, 1)
		go func() {
			var b []byte
			var err error
			if i == 0 {
				b, err = io.ReadAll(r) // Read
			} else {
				var buf bytes.Buffer
				_, err = io.Copy(&buf, r) // WriteTo
				b = buf.Bytes()
			}
			if err != nil {
				t.Error(err)
			}
			got[i] <- b
		}()
	}
	w, err := wc.NewTopicWriter("logs.app")
	if err != nil {
		t.Fatal(err)
	}
	for p := want; len(p) > 0; { // writes of odd sizes, across chunk boundaries
		n := min(len(p), 1+rng.IntN(100_000))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v; want ErrClosed", err)
	}
	for i := range readers {
		select {
		case b := <-got[i]:
			if !bytes.Equal(b, want) {
				t.Fatalf("reader %d got %d bytes, not the %d written", i, len(b), len(want))
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("reader %d did not reach the end", i)
		}
	}
}

func TestTopicReaderReportsGaps(t *testing.T) {
	path, _ := startBus(t)
	pub := connect(t, path)
	send := func(seq string, data string) {
		t.Helper()
		if err := pub.PublishMsg(&Msg{Topic: "gappy", Header: HeaderOf(StreamSeqHeader, seq), Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		send func()
	}{
		{"dropped", func() { send("0", "a"); send("2", "c") }},
		{"joined late", func() { send("5", "f") }},
		{"not a stream", func() { pub.Publish("gappy", []byte("plain")) }},
		{"second writer", func() {
			send("0", "a")
			connect(t, path).PublishMsg(&Msg{Topic: "gappy", Header: HeaderOf(StreamSeqHeader, "1")})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTopicReader(t, connect(t, path), "gappy")
			tc.send()
			done := make(chan error, 1)
			go func() { _, err := io.ReadAll(r); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				r.Close()
				t.Fatal("the reader is still waiting: it took the gap for part of the stream")
			}
			if !errors.Is(err, ErrStreamGap) {
				t.Fatalf("err = %v; want ErrStreamGap", err)
			}
			if _, again := r.Read(make([]byte, 1)); !errors.Is(again, ErrStreamGap) {
				t.Fatalf("a second Read: %v; want the same error", again)
			}
		})
	}
}

func TestTopicReaderCloseEndsARead(t *testing.T) {
	path, _ := startBus(t)
	r := newTopicReader(t, connect(t, path), "quiet")
	done := make(chan error, 1)
	go func() { _, err := r.Read(make([]byte, 8)); done <- err }()
	time.Sleep(20 * time.Millisecond) // let the Read start waiting
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read ended with %v; want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waiting after Close")
	}
}

func TestMakeFileLinesAndValues(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	type point struct{ X, Y int }
	go func() {
		f := MakeFile(nil, a)
		f.WriteLine("first")
		f.Write([]byte("second\r\n"))
		f.WriteValue(point{3, 4})
		f.WriteValue(map[string]any{"k": "v"})
		f.Write([]byte("last, no newline"))
		f.Flush()
		a.Close()
	}()
	f := MakeFile(b, nil)
	for _, want := range []string{"first", "second"} {
		if got, err := f.ReadLine(); err != nil || got != want {
			t.Fatalf("ReadLine = %q, %v; want %q", got, err, want)
		}
	}
	var p point
	if err := f.ReadValue(&p); err != nil || p != (point{3, 4}) {
		t.Fatalf("ReadValue = %+v, %v", p, err)
	}
	var m map[string]any
	if err := f.ReadValue(&m); err != nil || m["k"] != "v" {
		t.Fatalf("ReadValue = %v, %v", m, err)
	}
	if got, err := f.ReadLine(); err != nil || got != "last, no newline" {
		t.Fatalf("ReadLine = %q, %v", got, err)
	}
	if _, err := f.ReadLine(); err != io.EOF {
		t.Fatalf("at the end: %v; want io.EOF", err)
	}
	if err := f.WriteLine("x"); err == nil {
		t.Fatal("WriteLine on a File without a writer succeeded")
	}
}

func TestMakeFileRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 1, 2}, ErrDecode},
		{"cut short", []byte{0, 0, 0, 9, 0x92}, io.ErrUnexpectedEOF},
		{"prefix cut short", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"not msgpack", []byte{0, 0, 0, 1, 0xc1}, ErrDecode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := MakeFile(bytes.NewReader(tc.input), nil).ReadValue(&v); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestMakeFileRefusesAnEndlessLine(t *testing.T) {
	endless := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), MaxLineLen+100)), bytes.NewReader([]byte("\nnext\n")))
	f := MakeFile(endless, nil)
	if _, err := f.ReadLine(); !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("err = %v; want bufio.ErrTooLong", err)
	}
}

func TestTopicWriterCloseWithErrorAbortsReaders(t *testing.T) {
	path, _ := startBus(t)
	r := newTopicReader(t, connect(t, path), "cut")
	w, err := connect(t, path).NewTopicWriter("cut")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial "))
	if err := w.CloseWithError(errors.New("disk on fire")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var got []byte
	go func() { got, err = io.ReadAll(r); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.Close()
		t.Fatal("the reader is still waiting after the writer aborted")
	}
	if string(got) != "partial " || !errors.Is(err, ErrStreamAborted) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("read %q, %v; want the bytes before the abort, then ErrStreamAborted saying why", got, err)
	}
}
