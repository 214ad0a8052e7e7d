package bus

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

func TestShutdownTellsClientsAndStopsEverything(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	srv, err := NewServer(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(shortPath(t))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	a, b := connectRaw(t, l.Path()), connectRaw(t, l.Path())
	a.sub(1, ">", "")
	a.sync()
	b.pub("last.words", "flushed before the goodbye")
	b.sync()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if f := a.next(); f.Op != wire.OpMsg || string(f.Payload) != "flushed before the goodbye" {
		t.Fatalf("got %v %q; want the pending MSG first", f.Op, f.Payload)
	}
	about(t, a.expectErr(wire.CodeShuttingDown, "shutting down"), 0, 0)
	a.expectClosed()
	b.expectErr(wire.CodeShuttingDown, "shutting down")
	a.sock.Close()
	b.sock.Close()
	waitGoroutines(t, goroutines)
	if err := srv.Serve(context.Background(), l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown returned %v", err)
	}
}

func TestServeStopsWhenItsContextEnds(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	srv, _ := NewServer(DefaultConfig())
	l, err := Listen(shortPath(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	c := connectRaw(t, l.Path())
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	c.expectErr(wire.CodeShuttingDown, "")
	c.sock.Close()
	waitGoroutines(t, goroutines)
}

func TestConfigValidate(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"fds":      func(c *Config) { c.Limits.MaxFDs = 254 },
		"payload":  func(c *Config) { c.Limits.MaxPayload = 0 },
		"conns":    func(c *Config) { c.MaxConns = 0 },
		"pending":  func(c *Config) { c.MaxPending = 0 },
		"fds/conn": func(c *Config) { c.MaxPendingFDs = 1 },
		"user":     func(c *Config) { c.User.Output = 0 },
		"user fds": func(c *Config) { c.User.InputFDs = 1 },
		"conn fds": func(c *Config) { c.MaxFDs = c.MaxConns },
		"memory":   func(c *Config) { c.MaxMemory = 1 << 20 },
		"timeout":  func(c *Config) { c.HandshakeTimeout = 0 },
		"write":    func(c *Config) { c.WriteTimeout = 0 },
		"frame":    func(c *Config) { c.FrameTimeout = 0 },
		"stall":    func(c *Config) { c.StallBudget = -1 },
	} {
		cfg := DefaultConfig()
		edit(&cfg)
		if _, err := NewServer(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: NewServer = %v; want ErrBadConfig", name, err)
		}
	}
}

func TestTooManyConnections(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.MaxConns = 1 })
	connectRaw(t, path)
	extra := dialRaw(t, path)
	about(t, extra.expectErr(wire.CodeTooManyConns, "limit of 1 connections"), 0, 0)
	extra.expectClosed()
}

// shortPath returns a socket path in a fresh directory short enough for
// sun_path, removed when the test ends.
func shortPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir + "/s/b.sock"
}

// waitGoroutines waits for the goroutine count to fall back to want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines; want %d\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Clients whose connect succeeded but that the broker had not accepted
// when it stopped get ERR shutting down in place of INFO, as one accepted
// meanwhile does, and not a reset when the listener closes. The accept hook
// holds Serve back from accepting until the test ends, so only Shutdown can
// have answered them.
func TestShutdownAnswersTheAcceptQueue(t *testing.T) {
	atAccept := make(chan struct{}, 1)
	release := make(chan struct{})
	srv, path := testBroker(t, func(c *Config) {
		c.hooks = &hooks{accept: func() {
			select {
			case atAccept <- struct{}{}:
			default:
			}
			<-release
		}}
	})
	// Before testBroker's cleanup, which waits for Serve to return.
	t.Cleanup(func() { close(release) })
	<-atAccept // Serve has taken the listener: Shutdown will close it
	const n = 4
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, path)
		if i%2 == 0 {
			// As a real client does at once: the HELLO is still unread
			// when the broker closes the socket, which must not cost the
			// client the ERR.
			body, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: t.Name()})
			clients[i].send(wire.AppendControl(nil, wire.OpHello, 0, body))
		}
	}
	before := srv.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		about(t, c.expectErr(wire.CodeShuttingDown, "shutting down"), 0, 0)
		c.expectClosed()
	}
	if got := srv.Stats().RefusedConns - before.RefusedConns; got != n {
		t.Errorf("RefusedConns rose by %d; want %d", got, n)
	}
}
