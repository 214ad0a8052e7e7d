// Command request-reply is a service and its client: the service sums the
// numbers in each request on "math.sum" and replies with the total.
//
// Start a bus (make run), then the service, then the client, each in a
// terminal of its own:
//
//	go run ./examples/request-reply -serve
//	go run ./examples/request-reply
//
// A request is a message with a reply topic. Conn.Request makes that topic
// up on the requester's private inbox, publishes, and waits for the one
// message that comes back to it; the service answers with Msg.Respond. When
// nothing subscribes to a request's topic, the broker says so at once and
// Request returns clientlib.ErrNoResponders rather than waiting for its
// timeout: the client shows that with "math.product", which nobody serves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
)

const sumTopic = "math.sum"

func main() {
	serve := flag.Bool("serve", false, "answer requests on "+sumTopic+" until interrupted")
	flag.Parse()
	// The service runs until SIGINT or SIGTERM, then exits with status 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := clientlib.Connect(connectCtx, clientlib.WithName("request-reply-example"))
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if *serve {
		err = serveSum(ctx, c)
	} else {
		err = ask(ctx, c)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// serveSum answers requests on sumTopic until ctx ends.
func serveSum(ctx context.Context, c *clientlib.Conn) error {
	_, err := c.Subscribe(sumTopic, func(m *clientlib.Msg) {
		// Even a bad request gets a reply: a requester left without one
		// waits for its whole timeout.
		if err := m.Respond([]byte(sum(m.Data))); err != nil {
			log.Printf("replying to %q: %v", m.Data, err)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", sumTopic, err)
	}
	// Subscribe only queues the subscription; once Flush returns, the broker
	// has it, so requests sent from now on reach this service.
	if err := c.Flush(ctx); err != nil {
		return fmt.Errorf("subscribing to %s: %w", sumTopic, err)
	}
	fmt.Fprintln(os.Stderr, "serving", sumTopic)
	<-ctx.Done()
	return nil
}

// sum is the service's answer to data: the total of the integers in it, or
// why there is none.
func sum(data []byte) string {
	total := 0
	for _, field := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(field)
		if err != nil {
			return fmt.Sprintf("error: %q is not a number", field)
		}
		total += n
	}
	return strconv.Itoa(total)
}

// ask sends a few requests to the service and prints the replies, then one
// to a topic nobody serves.
func ask(ctx context.Context, c *clientlib.Conn) error {
	for _, q := range []string{"1 2 3", "40 2", "7 seven"} {
		reply, err := request(ctx, c, sumTopic, q)
		if errors.Is(err, clientlib.ErrNoResponders) {
			return fmt.Errorf("is the service running (-serve)? %w", err)
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s %q -> %s\n", sumTopic, q, reply)
	}
	switch _, err := request(ctx, c, "math.product", "6 7"); {
	case errors.Is(err, clientlib.ErrNoResponders):
		fmt.Println("math.product: no responders")
		return nil
	case err != nil:
		return err
	default:
		return errors.New("math.product: answered, though this example serves no such topic")
	}
}

// request sends one request and waits for its reply for at most five
// seconds: a service that is running but stuck must not hang the client.
func request(ctx context.Context, c *clientlib.Conn, topic, data string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, topic, []byte(data))
	if err != nil {
		return "", err // it names the topic already
	}
	return string(reply.Data), nil
}
