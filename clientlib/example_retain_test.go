package clientlib_test

import (
	"context"
	"fmt"
	"time"

	"github.com/busd/busd/clientlib"
)

// A retained value is the topic's current state: a subscriber that comes
// later gets it first, then the updates.
func ExampleWithRetained() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sensor, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer sensor.Close()
	sensor.PublishRetained("home.temperature", []byte("20.5"))
	sensor.Flush(ctx) // retained before the display starts

	display, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer display.Close()
	sub, err := display.SubscribeSync("home.*", clientlib.WithRetained())
	if err != nil {
		panic(err)
	}
	display.Flush(ctx) // subscribed: the update below is live
	sensor.PublishRetained("home.temperature", []byte("21.0"))

	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s retained=%v\n", m.Topic, m.Data, m.Retained())
	}
	// Output:
	// home.temperature 20.5 retained=true
	// home.temperature 21.0 retained=false
}

// A last will tells the others that a process went away without saying
// goodbye: here its connection is cut as if it had been killed. Made
// retained, the will also tells those who come later.
func ExampleWithWill() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	watcher, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer watcher.Close()
	sub, err := watcher.SubscribeSync("presence.>", clientlib.WithRetained())
	if err != nil {
		panic(err)
	}
	watcher.Flush(ctx)

	app, err := clientlib.Connect(ctx, clientlib.WithSocket(path), clientlib.WithNoReconnect(),
		clientlib.WithWill("presence.editor", []byte("offline"), clientlib.WillRetained()))
	if err != nil {
		panic(err)
	}
	app.PublishRetained("presence.editor", []byte("online"))
	app.Flush(ctx)
	clientlib.CutForExample(app) // a crash (a test helper): no Close, so the broker publishes the will

	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s\n", m.Topic, m.Data)
	}
	// Output:
	// presence.editor online
	// presence.editor offline
}
