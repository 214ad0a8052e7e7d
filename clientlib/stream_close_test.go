package clientlib

// StreamListener.Close and Accept when the connection or the broker ends
// the listener first.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/busd/busd/bus"
)

// closeWithin runs l.Close and fails the test if it takes longer than d.
func closeWithin(t *testing.T, l *StreamListener, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if el := time.Since(start); el > d {
			t.Errorf("Close took %v; want under %v", el, d)
		}
		return err
	case <-time.After(d + 6*time.Second):
		t.Fatalf("Close still running after %v", d+6*time.Second)
		return nil
	}
}

// The broker goes away under a listener (as http.Serve sees it: Accept
// returns net.ErrClosed, then the server closes its listener): Close
// returns nil at once. Before the fix, a Close that came between the
// connection's error being set and its subscriptions being ended passed on
// Drain's error (the broker's "shutting down"); rounds are repeated because
// that window is narrow (a few of 20 hit it).
func TestListenerCloseAfterBrokerGone(t *testing.T) {
	failed := 0
	for range 20 {
		path, bs := startBus(t)
		srv := connect(t, path, WithNoReconnect())
		l := listen(t, srv, "gone")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		bs.Shutdown(ctx)
		cancel()
		if _, err := l.AcceptStream(testCtx(t)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept: %v; want net.ErrClosed", err)
		}
		// At once: not after waiting closeWait for a broker that is gone.
		if err := closeWithin(t, l, closeWait/2); err != nil {
			failed++
			if failed == 1 {
				t.Errorf("Close after the connection ended: %v; want nil", err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of 20 rounds: Close returned the connection's error", failed)
	}
}

// http.Server.Close (which holds its own lock while closing listeners)
// from a handler served over one of the listener's streams, with dials in
// flight: no deadlock, Close is quick, every dialer hears an answer.
func TestHTTPCloseFromHandler(t *testing.T) {
	path, _ := startBus(t)
	srv, cli := connect(t, path), connect(t, path)
	l := listen(t, srv, "web")
	hs := &http.Server{}
	closed := make(chan error, 1)
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "bye")
		if r.URL.Path == "/close" {
			go func() { closed <- hs.Close() }()
		}
	})
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return cli.DialStream(ctx, "web")
	}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	var wg sync.WaitGroup
	hung := make(chan error, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				resp, err := client.Get("http://web/")
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, http.ErrHandlerTimeout) {
						hung <- err
					}
					if errors.Is(err, ErrNoListener) {
						return
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	if resp, err := client.Get("http://web/close"); err == nil {
		resp.Body.Close()
	}
	select {
	case <-closed:
	case <-time.After(7 * time.Second):
		t.Fatal("http.Server.Close did not return")
	}
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	wg.Wait()
	close(hung)
	for err := range hung {
		t.Errorf("a client waited out its timeout: %v", err)
	}
}

// Close, a second Close and the connection's Close at once: no race, no
// hang.
func TestListenerCloseConcurrent(t *testing.T) {
	path, _ := startBus(t)
	for range 20 {
		srv := connect(t, path)
		l, err := srv.Listen("twice")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- closeWithin(t, l, closeWait/2) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); srv.Close() }()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	}
}

// refusedListener returns a listener whose SUB the broker refuses: the
// connection is at MaxSubs. Listen has returned by the time the refusal
// comes back, as an ERR.
func refusedListener(t *testing.T) (*Conn, *StreamListener) {
	t.Helper()
	path, _ := startBusWith(t, func(c *bus.Config) { c.MaxSubs = 1 })
	srv := connect(t, path)
	if _, err := srv.SubscribeSync("other"); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("refused")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return srv, l
}

// Accept on a listener the broker refused returns the refusal. Before the
// fix it waited for ever (http.Serve hung) while every dial got
// ErrNoListener.
func TestAcceptAfterSubRefused(t *testing.T) {
	srv, l := refusedListener(t)
	flush(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := l.AcceptStream(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptStream on a listener the broker refused waited until ctx ended; want the refusal (%v)", l.sub.q.err)
	}
}
