// Command pubsub is the smallest busd program: it subscribes to "greet.>",
// publishes three greetings, prints them as they arrive, and exits.
//
// Start a bus first (make run), then:
//
//	go run ./examples/pubsub
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/busd/busd/clientlib"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithName("pubsub-example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sub, err := c.SubscribeSync("greet.>")
	if err != nil {
		log.Fatal(err)
	}
	for _, who := range []string{"world", "bus", "you"} {
		if err := c.Publish("greet."+who, []byte("hello, "+who)); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		m, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s (from pid %d)\n", m.Topic, m.Data, m.Origin.PID)
	}
}
