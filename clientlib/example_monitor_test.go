package clientlib_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/busd/busd/clientlib"
)

// A monitor watches the bus without taking part: a request to a topic
// nobody serves still fails at once, and the monitor sees it go by.
func ExampleAsMonitor() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	watcher, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer watcher.Close()
	mon, err := watcher.SubscribeSync(">", clientlib.AsMonitor())
	if err != nil {
		panic(err)
	}
	watcher.Flush(ctx) // the monitor is in place at the broker

	client, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer client.Close()
	_, err = client.Request(ctx, "nobody.here", []byte("anyone?"))
	fmt.Println(errors.Is(err, clientlib.ErrNoResponders))

	m, err := mon.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %q\n", m.Topic, m.Data)
	// Output:
	// true
	// nobody.here "anyone?"
}
