package clientlib

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// listen makes a stream listener on c, closed with the test.
func listen(t *testing.T, c *Conn, name string) *StreamListener {
	t.Helper()
	l, err := c.Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	flush(t, c)
	return l
}

func TestDirectStreamCarriesBytesBothWays(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "echo")
	errs := make(chan error, 1)
	go func() {
		sc, err := l.AcceptStream(testCtx(t))
		if err != nil {
			errs <- err
			return
		}
		defer sc.Close()
		if p := sc.Peer(); p.Conn != cli.ConnID() || p.PID != os.Getpid() {
			errs <- fmt.Errorf("listener sees peer %+v; want conn %d", p, cli.ConnID())
			return
		}
		_, err = io.Copy(sc, sc) // echo until the dialer half-closes
		if err == nil {
			err = sc.CloseWrite()
		}
		errs <- err
	}()
	sc, err := cli.DialStream(testCtx(t), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if sc.RemoteAddr().String() != "echo" || sc.LocalAddr().Network() != "busd-stream" {
		t.Fatalf("addresses %v %v", sc.LocalAddr(), sc.RemoteAddr())
	}
	if p := sc.Peer(); p.Conn != srv.ConnID() {
		t.Fatalf("dialer sees peer %+v; want conn %d", p, srv.ConnID())
	}
	want := strings.Repeat("stream bytes ", 100_000) // more than the socket buffers hold
	go func() {
		io.WriteString(sc, want)
		sc.CloseWrite()
	}()
	got, err := io.ReadAll(sc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("echoed %d bytes; want %d", len(got), len(want))
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func TestDialStreamWithoutListenerFailsAtOnce(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	base := countFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.DialStream(ctx, "nobody")
	if !errors.Is(err, ErrNoListener) || !errors.Is(err, ErrNoResponders) || !strings.Contains(err.Error(), `"nobody"`) {
		t.Fatalf("err = %v; want ErrNoListener naming the stream", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v: waited instead of failing at once", d)
	}
	waitFDs(t, base)
	if _, err := c.DialStream(ctx, "two..dots"); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("bad name: err = %v; want ErrInvalidTopic", err)
	}
}

func TestStreamListenerCloseEndsAcceptAndRefuses(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "closing")
	// Two streams wait in the backlog when the listener closes: both are
	// closed, so their dialers see the end of the stream.
	var waiting []*StreamConn
	for range 2 {
		sc, err := cli.DialStream(testCtx(t), "closing")
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		waiting = append(waiting, sc)
	}
	accepted := make(chan error, 1)
	l.Close()
	go func() { _, err := l.Accept(); accepted <- err }()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
	for _, sc := range waiting {
		sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := sc.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("stream left in the backlog: read %d, %v; want EOF", n, err)
		}
	}
	flush(t, srv)
	if _, err := cli.DialStream(testCtx(t), "closing"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("dial after Close: %v; want ErrNoListener", err)
	}
}

func TestStreamBacklogFullRefusesAtOnce(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	listen(t, srv, "busy")
	for i := range listenBacklog {
		sc, err := cli.DialStream(testCtx(t), "busy")
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer sc.Close()
	}
	_, err := cli.DialStream(testCtx(t), "busy")
	if !errors.Is(err, ErrStreamRefused) || !strings.Contains(err.Error(), "backlog") {
		t.Fatalf("err = %v; want ErrStreamRefused for the full backlog", err)
	}
}

func TestStreamListenerRefusesWhatIsNotASocket(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "strict")
	base := countFDs(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	for _, files := range [][]*os.File{nil, {r}, {r, w}} {
		reply, err := cli.RequestMsg(testCtx(t), &Msg{Topic: StreamPrefix + "strict", Files: files})
		if err != nil {
			t.Fatal(err)
		}
		if why := reply.Header.Get(StreamErrorHeader); why == "" {
			t.Fatalf("%d files: accepted; want a %s header", len(files), StreamErrorHeader)
		}
	}
	r.Close()
	w.Close()
	waitFDs(t, base) // the listener closed every descriptor it refused
	// And it still serves real streams.
	go func() {
		if sc, err := l.AcceptStream(testCtx(t)); err == nil {
			io.WriteString(sc, "ok")
			sc.Close()
		}
	}()
	sc, err := cli.DialStream(testCtx(t), "strict")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if got, _ := io.ReadAll(sc); string(got) != "ok" {
		t.Fatalf("got %q", got)
	}
}

func TestHTTPOverADirectStream(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "web")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from pid %d", r.URL.Path, os.Getpid())
	})}
	go hs.Serve(l)
	defer hs.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return cli.DialStream(ctx, "web") },
	}}
	defer client.CloseIdleConnections()
	for i := range 3 { // a kept-alive stream, then the same again
		resp, err := client.Get(fmt.Sprintf("http://web/page%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("hello /page%d from pid %d", i, os.Getpid()); string(body) != want {
			t.Fatalf("got %q; want %q", body, want)
		}
	}
}
