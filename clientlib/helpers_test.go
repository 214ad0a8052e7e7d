package clientlib

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/busd/busd/bus"
)

// startBus runs a broker for the test on a fresh socket and returns its path.
func startBus(t *testing.T) (string, *bus.Server) {
	t.Helper()
	return startBusWith(t, nil)
}

// startBusWith is startBus with a configuration edit changes.
func startBusWith(t *testing.T, edit func(*bus.Config)) (string, *bus.Server) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cl") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := dir + "/d/t.sock"
	return path, serveWith(t, path, edit)
}

// serveWith runs a broker configured by edit (if not nil) on path, which
// another broker may have served before it (Listen makes its directory,
// whose parent must exist), until it is shut down or the test ends.
func serveWith(t *testing.T, path string, edit func(*bus.Config)) *bus.Server {
	t.Helper()
	cfg := bus.DefaultConfig()
	// These tests check what arrives, not pacing (bus's flow tests do): a
	// subscriber that the race detector and a loaded machine deschedule for
	// longer than the default 5 ms budget would become a laggard and lose
	// messages the test counts on. Tests of losses set their own budget.
	cfg.StallBudget = time.Second
	if edit != nil {
		edit(&cfg)
	}
	srv, err := bus.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := bus.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { stopBus(t, srv) })
	return srv
}

// stopBus shuts srv down, as busd does on SIGTERM: its clients get ERR
// "shutting down".
func stopBus(t *testing.T, srv *bus.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

func connect(t *testing.T, path string, opts ...Option) *Conn {
	t.Helper()
	c, err := Connect(testCtx(t), append([]Option{WithSocket(path), WithName(t.Name())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testCtx is a context that ends with the test or after 10 seconds: the
// watchdog of every blocking call in these tests.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func flush(t *testing.T, c *Conn) {
	t.Helper()
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, s *Subscription) *Msg {
	t.Helper()
	m, err := s.Next(testCtx(t))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}
