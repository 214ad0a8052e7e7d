// Command reconnect shows clients that outlive their bus. Started before
// the bus, they wait for it; when it restarts (stopped, or killed), they
// reconnect by themselves, restore their subscriptions, and carry on. A
// publisher is told of every message it published while the bus was away
// that then reached nobody.
//
//	reconnect sub TOPIC           print each message as "got TOPIC DATA"
//	reconnect worker TOPIC GROUP  the same, as a member of a queue group
//	reconnect reply TOPIC         answer each request with "re: DATA"
//	reconnect pub TOPIC...        publish each line of stdin to every TOPIC;
//	                              the line "flush" waits for the broker
//	reconnect req TOPIC           send each line of stdin as a request
//
// Each prints "ready" once it is connected and subscribed, and a line when
// its connection drops, when it is back, and when its subscriptions are
// in place again. sub, worker and reply run
// until interrupted; pub and req until the end of their input. Try it with
// a bus (make run) in one terminal and, in others:
//
//	go run ./examples/reconnect sub news
//	go run ./examples/reconnect pub news
//
// then stop the bus, type a few lines into pub, and start the bus again.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
)

var printMu sync.Mutex

// say prints one line; the roles' goroutines share stdout.
func say(format string, args ...any) {
	printMu.Lock()
	defer printMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: reconnect sub|worker|reply|pub|req TOPIC [GROUP|TOPIC...]")
		os.Exit(2)
	}
	role, args := os.Args[1], os.Args[2:]
	closed := make(chan struct{})
	c, err := clientlib.Connect(context.Background(), // no deadline: wait for the bus as long as it takes
		clientlib.WithName("reconnect-"+role),
		clientlib.WithDisconnectHandler(func(_ *clientlib.Conn, err error) { say("disconnected: %v", err) }),
		clientlib.WithReconnectHandler(func(c *clientlib.Conn, r clientlib.Restored) {
			say("reconnected: %d subscriptions, %d messages buffered", r.Subscriptions, r.Messages)
			// The subscriptions were sent again first; once the broker
			// has answered a PING sent after them, they are in place.
			go func() {
				if flush(c) == nil {
					say("subscriptions in place")
				}
			}()
		}),
		clientlib.WithClosedHandler(func(*clientlib.Conn) { close(closed) }),
		clientlib.WithErrorHandler(func(_ *clientlib.Conn, _ *clientlib.Subscription, err error) {
			// What the Conn could not deliver comes back here, with the
			// message: publishing it again would be this program's choice.
			if u, ok := errors.AsType[*clientlib.UndeliveredError](err); ok {
				say("undelivered %s %s: %v", u.Msg.Topic, u.Msg.Data, u.Err)
				return
			}
			say("error: %v", err)
		}),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reconnect:", err)
		os.Exit(1)
	}
	err = run(c, role, args)
	c.Close()
	<-closed // the handlers have said all they had to
	if err != nil {
		fmt.Fprintln(os.Stderr, "reconnect:", err)
		os.Exit(1)
	}
}

func run(c *clientlib.Conn, role string, args []string) error {
	switch role {
	case "sub", "worker", "reply":
		return serve(c, role, args)
	case "pub":
		return publish(c, args)
	case "req":
		return request(c, args[0])
	}
	return fmt.Errorf("unknown role %q", role)
}

// serve subscribes as role says and runs until interrupted.
func serve(c *clientlib.Conn, role string, args []string) error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	var err error
	switch role {
	case "sub":
		_, err = c.Subscribe(args[0], func(m *clientlib.Msg) { say("got %s %s", m.Topic, m.Data) })
	case "worker":
		if len(args) < 2 {
			return errors.New("worker needs a TOPIC and a GROUP")
		}
		_, err = c.QueueSubscribe(args[0], args[1], func(m *clientlib.Msg) { say("got %s %s", m.Topic, m.Data) })
	case "reply":
		_, err = c.Subscribe(args[0], func(m *clientlib.Msg) {
			if err := m.Respond(append([]byte("re: "), m.Data...)); err != nil {
				say("error: %v", err)
			}
		})
	}
	if err != nil {
		return err
	}
	if err := flush(c); err != nil {
		return err
	}
	say("ready")
	<-stop
	return nil
}

// publish sends each line of stdin to every topic.
func publish(c *clientlib.Conn, topics []string) error {
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		line := in.Text()
		if line == "flush" {
			if err := flush(c); err != nil {
				say("flush failed: %v", err)
				continue
			}
			say("flushed")
			continue
		}
		for _, t := range topics {
			// While the bus is away this buffers the message, and
			// returns ErrReconnectBufferFull once the buffer is full.
			if err := c.Publish(t, []byte(line)); err != nil {
				say("failed %s %s: %v", t, line, err)
				continue
			}
			say("published %s %s", t, line)
		}
	}
	return flush(c) // a Close straight after the last publish would not wait for the broker
}

// request sends each line of stdin as a request to topic.
func request(c *clientlib.Conn, topic string) error {
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// A request made while the bus is away waits for the reconnect;
		// one in flight when the connection drops fails with
		// ErrConnectionLost (the responder may have handled it).
		r, err := c.Request(ctx, topic, in.Bytes())
		cancel()
		if err != nil {
			say("failed %s: %v", in.Text(), err)
			continue
		}
		say("answer %s", r.Data)
	}
	return nil
}

// flush waits until the broker has handled what was sent, or the bus has
// been away for too long.
func flush(c *clientlib.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Flush(ctx)
}
