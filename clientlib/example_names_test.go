package clientlib_test

import (
	"context"
	"fmt"
	"time"

	"github.com/busd/busd/clientlib"
)

// A service takes a well-known name, subscribed first to its topics; a
// client calls it by the name; a watcher sees the owner change when the
// service goes and its stand-by, queued, takes over.
func ExampleConn_RequestName() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	connect := func(name string) *clientlib.Conn {
		c, err := clientlib.Connect(ctx, clientlib.WithSocket(path), clientlib.WithName(name))
		if err != nil {
			panic(err)
		}
		return c
	}
	service, standby, client := connect("service"), connect("standby"), connect("client")
	defer standby.Close()
	defer client.Close()
	changes, err := client.WatchName(ctx, "org.example.Clock")
	if err != nil {
		panic(err)
	}
	for _, c := range []*clientlib.Conn{service, standby} {
		c.Subscribe("_NAME.org.example.Clock.>", func(m *clientlib.Msg) { m.Respond([]byte("tick")) })
	}
	r1, _ := service.RequestName(ctx, "org.example.Clock")
	r2, _ := standby.RequestName(ctx, "org.example.Clock")
	fmt.Println("service:", r1, "standby:", r2)
	for ch := range changes {
		if ch.New == nil {
			fmt.Println("nobody owns", ch.Name)
			continue
		}
		fmt.Println(ch.New.Name, "owns", ch.Name)
		if ch.New.Name == "standby" {
			break
		}
		if ch.New.Name == "service" {
			r, err := client.Request(ctx, "_NAME.org.example.Clock.now", nil)
			if err != nil {
				panic(err)
			}
			fmt.Printf("the owner answered %q\n", r.Data)
			service.Close() // its name passes to the standby at once
		}
	}
	// Output:
	// service: primary_owner standby: in_queue
	// nobody owns org.example.Clock
	// service owns org.example.Clock
	// the owner answered "tick"
	// standby owns org.example.Clock
}
