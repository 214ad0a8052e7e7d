package clientlib_test

import (
	"context"
	"fmt"
	"time"

	"github.com/busd/busd/clientlib"
)

// A tool lists the connections of a bus with what each has sent and
// received, as `bus stat` does. The broker's own uid sees every uid's
// connections; any other uid sees its own.
func ExampleConn_BrokerConns() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(path), clientlib.WithName("stat"))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	conns, all, err := c.BrokerConns(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("every uid's:", all)
	for _, cs := range conns {
		fmt.Printf("%d %s: %d subscriptions, %d messages published\n", cs.ConnID, cs.Name, cs.Subs, cs.MsgsIn)
	}
	// Output:
	// every uid's: true
	// 1 stat: 1 subscriptions, 0 messages published
}

// A connection's own counters, and the broker's totals.
func ExampleConn_Stats() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.Publish("app.hello", []byte("hi")); err != nil {
		panic(err)
	}
	published := c.Stats().MsgsOut // before the request, which is a message too
	st, err := c.BrokerStats(ctx)  // answered after the publish: it is counted
	if err != nil {
		panic(err)
	}
	fmt.Printf("published %d; the broker routed %d\n", published, st.MsgsIn)
	// Output:
	// published 1; the broker routed 1
}
