package clientlib

// The edges of streams: closing under dialers, hostile descriptors, ends
// that come early, and readers that fall behind.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A dialer whose request is on its way to a listener when the listener
// closes gets an answer (accepted, refused, or no listener) rather than
// waiting until its ctx ends. Before the fix, Close unsubscribed, and the
// requests queued or in flight were dropped with no answer sent.
func TestListenerCloseAnswersQueuedDialers(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	base := countFDs(t)
	hung := 0
	for round := 0; round < 20 && hung == 0; round++ {
		name := fmt.Sprintf("closing%d", round)
		l := listen(t, srv, name)
		go func() { // accept and close, as a server that is busy would
			for {
				sc, err := l.Accept()
				if err != nil {
					return
				}
				sc.Close()
			}
		}()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					// An answer is a round trip through the broker and the
					// listener, however slow the machine; the ctx is the
					// watchdog of a dial nobody answers.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					sc, err := cli.DialStream(ctx, name)
					cancel()
					switch {
					case err == nil:
						sc.Close()
					case errors.Is(err, ErrStreamRefused):
					case errors.Is(err, ErrNoListener):
						return
					case errors.Is(err, context.DeadlineExceeded):
						mu.Lock()
						hung++
						mu.Unlock()
						return
					default:
						t.Errorf("DialStream: %v", err)
						return
					}
				}
			}()
		}
		time.Sleep(5 * time.Millisecond)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait() // each dial has a 10 s ctx, and ErrNoListener ends the loop once the UNSUB is in
	}
	if hung > 0 {
		t.Errorf("%d dialers got no answer and waited for their ctx to end: the listener's Close dropped their requests", hung)
	}
	flush(t, srv)
	flush(t, cli)
	waitFDs(t, base)
}

// A listening socket, or one never connected, is refused with a
// StreamErrorHeader answer, as fileConn's doc promises "a connected Unix
// stream socket". Before the fix, checkStreamSocket accepted any AF_UNIX
// SOCK_STREAM descriptor, and Accept returned a stream that failed on first
// use.
func TestListenerRefusesUnconnectedSockets(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "strict")

	dir, err := os.MkdirTemp("", "rv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", dir+"/l.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unconnected := os.NewFile(uintptr(fd), "unconnected")
	defer unconnected.Close()

	for _, tc := range []struct {
		name string
		f    *os.File
	}{{"listening", lf}, {"unconnected", unconnected}} {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := cli.RequestMsg(testCtx(t), &Msg{Topic: StreamPrefix + "strict", Files: []*os.File{tc.f}})
			if err != nil {
				t.Fatal(err)
			}
			reply.CloseFiles()
			if _, refused := reply.Header.Lookup(StreamErrorHeader); refused {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			sc, err := l.AcceptStream(ctx)
			if err != nil {
				t.Fatalf("accepted, but AcceptStream: %v", err)
			}
			defer sc.Close()
			sc.SetDeadline(time.Now().Add(time.Second))
			_, rerr := sc.Read(make([]byte, 1))
			t.Errorf("a %s socket was accepted as a stream (Read on it: %v); want a %s answer", tc.name, rerr, StreamErrorHeader)
		})
	}
}

// Every descriptor of a refused stream is closed: the backlog-full path.
func TestBacklogFullLeaksNothing(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l, err := srv.Listen("full")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, srv)
	base := countFDs(t)
	var scs []*StreamConn
	for i := range listenBacklog {
		sc, err := cli.DialStream(testCtx(t), "full")
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		scs = append(scs, sc)
	}
	for range 5 {
		if _, err := cli.DialStream(testCtx(t), "full"); !errors.Is(err, ErrStreamRefused) {
			t.Fatalf("err = %v; want ErrStreamRefused", err)
		}
	}
	for _, sc := range scs {
		sc.Close()
	}
	l.Close()
	flush(t, srv)
	waitFDs(t, base)
}

// A DialStream whose ctx ends while the listener is deciding leaves no
// descriptor behind on either side once the listener's stream is closed.
func TestDialCtxEndsMidRequest(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "slow")
	base := countFDs(t)
	l.mu.Lock() // the listener takes the request but cannot answer yet
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := cli.DialStream(ctx, "slow")
	cancel()
	l.mu.Unlock()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want DeadlineExceeded", err)
	}
	// The listener accepted it after all; its peer is gone.
	sc, err := l.AcceptStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	sc.SetReadDeadline(time.Now().Add(10 * time.Second)) // the watchdog
	if n, err := sc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d, %v; want EOF from the abandoned stream", n, err)
	}
	sc.Close()
	flush(t, cli)
	waitFDs(t, base)
}

// Accept returns net.ErrClosed once the bus connection ends, and Close then
// closes what waited in the backlog.
func TestAcceptAfterConnEnds(t *testing.T) {
	path, _ := startBus(t)
	cli := connect(t, path)
	base := countFDs(t)
	srv := connect(t, path)
	l := listen(t, srv, "gone")
	sc, err := cli.DialStream(testCtx(t), "gone")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	srv.Close()
	done := make(chan error, 1)
	go func() {
		for { // the one waiting stream may come first
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			c.Close()
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after the connection ended")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after the connection ended: %v", err)
	}
	sc.Close()
	waitFDs(t, base)
}

// net/http over a StreamListener shuts down cleanly: Shutdown closes the
// listener, Serve returns ErrServerClosed, kept-alive streams are closed.
func TestHTTPShutdown(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "web")
	base := countFDs(t)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hi")
	})}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return cli.DialStream(ctx, "web")
	}}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range 2 {
		resp, err := client.Get("http://web/")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	tr.CloseIdleConnections()
	flush(t, srv) // the UNSUB is in (Close's Drain has already waited for it)
	if _, err := cli.DialStream(testCtx(t), "web"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("dial after Shutdown: %v; want ErrNoListener", err)
	}
	waitFDs(t, base)
}

// Only the listener gets the dialer's socket, so StreamConn.Peer ("the
// process at the other end ... cannot be forged") names who holds the other
// end. Before the fix, every subscriber of the stream topic got a copy: a
// third process on "_STREAM.>" (or ">") could read and write the stream.
func TestStreamSocketReachesOnlyTheListener(t *testing.T) {
	path, _ := startBus(t)
	srv, cli, snoop := connect(t, path), connect(t, path), connect(t, path)
	l := listen(t, srv, "private")
	spy, err := snoop.SubscribeSync(StreamPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, snoop)
	go func() {
		if sc, err := l.AcceptStream(testCtx(t)); err == nil {
			defer sc.Close()
			io.Copy(io.Discard, sc)
		}
	}()
	sc, err := cli.DialStream(testCtx(t), "private")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := spy.Next(ctx)
	if err != nil {
		return // nobody else saw it
	}
	defer m.CloseFiles()
	if len(m.Files) == 1 {
		m.Files[0].WriteString("not from the listener")
		sc.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 64)
		n, _ := sc.Read(b)
		t.Errorf("a third connection (conn %d) got the dialer's socket and wrote %q into the stream whose Peer is conn %d",
			snoop.ConnID(), b[:n], sc.Peer().Conn)
	}
}

// Close racing Read on a TopicReader, with a writer still writing: no data
// race (run with -race), and Read ends with ErrClosed.
func TestTopicReaderCloseRacesRead(t *testing.T) {
	path, _ := startBus(t)
	wc := connect(t, path)
	for i := range 20 {
		r := newTopicReader(t, connect(t, path), fmt.Sprintf("race.%d", i))
		w, err := wc.NewTopicWriter(fmt.Sprintf("race.%d", i))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		stopW := make(chan struct{})
		go func() {
			defer wg.Done()
			buf := make([]byte, 1000)
			for {
				select {
				case <-stopW:
					w.Close()
					return
				default:
				}
				if _, err := w.Write(buf); err != nil {
					return
				}
				w.Flush()
			}
		}()
		done := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, r); done <- err }()
		time.Sleep(time.Duration(i) * time.Millisecond)
		r.Close()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still waiting after Close")
		}
		close(stopW)
		wg.Wait()
	}
}

// A reader that falls behind so far that the end of the stream is dropped
// fails with ErrStreamGap, as the package doc promises. Before the fix it
// returned the first messages' bytes and then waited for ever for a
// Stream-End that its subscription had dropped.
func TestTopicReaderTailDropped(t *testing.T) {
	path, _ := startBus(t)
	wc := connect(t, path)
	rc := connect(t, path, WithSubscriptionLimits(4, 64<<20))
	r := newTopicReader(t, rc, "behind")
	w, err := wc.NewTopicWriter("behind")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 20*TopicChunk)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	flush(t, wc) // the broker routed every message
	flush(t, rc) // and the reader's queue has taken (or dropped) them
	if d := r.sub.Dropped(); d == 0 {
		t.Fatal("nothing dropped: the test did not make the reader fall behind")
	}
	done := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = io.Copy(io.Discard, r)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamGap) {
			t.Fatalf("read %d bytes, then %v; want ErrStreamGap", n, err)
		}
	case <-time.After(10 * time.Second):
		r.Close()
		<-done
		t.Fatalf("the reader returned %d of %d bytes and then waited: its subscription dropped %d messages, the end among them, and it never reported a gap",
			n, 20*TopicChunk, r.sub.Dropped())
	}
}

// After a publish error the TopicWriter keeps failing, and Close reports it.
func TestTopicWriterAfterPublishError(t *testing.T) {
	path, _ := startBus(t)
	wc := connect(t, path)
	w, err := wc.NewTopicWriter("dead")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("buffered")); err != nil {
		t.Fatal(err)
	}
	wc.Close()
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush: %v; want ErrClosed", err)
	}
	if n, err := w.Write(make([]byte, 2*TopicChunk)); err == nil || n != 0 {
		t.Fatalf("Write after the error: %d, %v", n, err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close: %v; want the publish error", err)
	}
}

// ReadValue takes memory as a value's bytes arrive, not for the length its
// 4-byte prefix announces. Before the fix it allocated the whole announced
// length (up to 64 MiB) at once: a peer could cost the reader 64 MiB per 4
// bytes sent.
func TestReadValueAllocatesOnlyWhatArrives(t *testing.T) {
	r, w := io.Pipe()
	go func() {
		w.Write([]byte{0x03, 0xff, 0xff, 0xff}) // 64 MiB - 1 announced
		w.Write([]byte{0x90})                   // and one byte sent
		w.Close()
	}()
	var before, after runtimeMem
	before.read()
	var v any
	err := MakeFile(r, nil).ReadValue(&v)
	after.read()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v; want io.ErrUnexpectedEOF", err)
	}
	if got := after.total - before.total; got > 8<<20 {
		t.Errorf("ReadValue allocated %d MiB for a 5-byte stream", got>>20)
	}
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.total = ms.TotalAlloc
}

// A read deadline (StreamConn documents SetDeadline as usable) that expires
// in the middle of a line keeps the part read: the next ReadLine returns the
// whole line. Before the fix the part was dropped, and the next ReadLine
// returned the rest as if it were a whole line.
func TestReadLineKeepsPartialLineAcrossTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	f := MakeFile(b, nil)
	// A write on a net.Pipe returns once the reader has taken its bytes:
	// the deadline expires while ReadLine, holding "par", waits for the
	// rest.
	wrote := make(chan struct{})
	go func() { a.Write([]byte("par")); close(wrote) }()
	go func() { <-wrote; b.SetReadDeadline(time.Now()) }()
	if _, err := f.ReadLine(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadLine: %v; want a timeout", err)
	}
	<-wrote
	b.SetReadDeadline(time.Now().Add(10 * time.Second)) // the watchdog
	go a.Write([]byte("tial\n"))
	line, err := f.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	if line != "partial" {
		t.Errorf("after a timeout, ReadLine = %q; want %q (the bytes read before the timeout were dropped)", line, "partial")
	}
}

// With a plain subscriber on the stream topics (a monitor such as
// `bus sub '>'`), a dial to a name nobody listens on still fails at once
// with ErrNoListener. Before the fix the monitor counted as a subscriber,
// so the broker sent no 503 and the dialer waited for its whole timeout.
func TestDialFailsAtOnceDespiteMonitor(t *testing.T) {
	path, _ := startBus(t)
	cli, mon := connect(t, path), connect(t, path)
	s, err := mon.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	flush(t, mon)
	// The refusal is a round trip through the broker, however long the
	// machine takes for it; before the fix the dial waited for its ctx.
	start := time.Now()
	_, err = cli.DialStream(testCtx(t), "nobody")
	if !errors.Is(err, ErrNoListener) {
		t.Errorf("DialStream with nobody listening but a monitor subscribed: %v after %v; want ErrNoListener at once",
			err, time.Since(start).Round(time.Millisecond))
	}
}

// A byte limit below one chunk: every data message is dropped, but the
// empty end message fits, and its number reveals the gap.
func TestTopicReaderEveryChunkDropped(t *testing.T) {
	path, _ := startBus(t)
	wc := connect(t, path)
	rc := connect(t, path, WithSubscriptionLimits(1024, TopicChunk/2))
	r := newTopicReader(t, rc, "toobig")
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); done <- err }()
	w, err := wc.NewTopicWriter("toobig")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 3*TopicChunk))
	w.Close()
	flush(t, wc)
	flush(t, rc)
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamGap) {
			t.Fatalf("err = %v; want ErrStreamGap", err)
		}
	case <-time.After(10 * time.Second):
		r.Close()
		<-done
		t.Fatalf("the reader waited although its subscription dropped %d of the stream's 4 messages", r.sub.Dropped())
	}
}
