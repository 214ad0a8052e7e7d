package clientlib_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/clientlib"
)

// A client started before its bus waits for it: Connect returns once the
// broker is up, or fails with ErrNoBus when its context ends first.
func ExampleConnect_waitForBus() {
	dir, err := os.MkdirTemp("", "ex") // short: sun_path is 108 bytes
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "later.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	connected := make(chan error, 1)
	go func() {
		c, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
		if err == nil {
			err = c.Close()
		}
		connected <- err
	}()

	// The broker starts after the client.
	srv, err := bus.NewServer(bus.DefaultConfig())
	if err != nil {
		panic(err)
	}
	l, err := bus.Listen(path)
	if err != nil {
		panic(err)
	}
	go srv.Serve(ctx, l)
	defer srv.Shutdown(ctx)

	fmt.Println("connected:", <-connected == nil)
	// Output: connected: true
}

// Watch tells which buses are up in a socket directory, and when they
// come and go.
func ExampleWatch() {
	path, stop := exampleBus() // a bus named "ex"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events, err := clientlib.Watch(ctx, filepath.Dir(path))
	if err != nil {
		panic(err)
	}
	ev := <-events // the buses up when Watch began come first
	fmt.Println(ev.Name, ev.Up)
	stop()
	ev = <-events
	fmt.Println(ev.Name, ev.Up)
	// Output:
	// ex true
	// ex false
}
