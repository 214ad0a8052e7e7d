package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/busd/busd/clientlib"
)

// refusal is the broker's ERR about a subscription, or (sub nil) a publish.
type refusal struct {
	sub *clientlib.Subscription
	err error
}

// runPlugin is the plugin: it serves its topics, tries what the policy
// forbids, reports each outcome on stdout, and then answers requests until
// its stdin ends (or the host's watchdog kills it).
func runPlugin(socket, hostInbox string) error {
	// The broker's refusals come to the error handler in order.
	refusals := make(chan refusal, 16) // more than the tries can provoke
	// The host started the broker before the plugin: it is up, so Connect
	// need not wait for it (and must not hang if something went wrong).
	c, err := clientlib.Connect(context.Background(), clientlib.WithSocket(socket), clientlib.WithName("plugin"), clientlib.WithNoWait(),
		clientlib.WithErrorHandler(func(_ *clientlib.Conn, sub *clientlib.Subscription, err error) {
			refusals <- refusal{sub, err}
		}))
	if err != nil {
		return err
	}
	defer c.Close()
	prefix := fmt.Sprintf("plugin.%d.", os.Getuid())

	echo, err1 := c.Subscribe(prefix+"echo", func(m *clientlib.Msg) { respond(m, m.Data) })
	secrets, err2 := c.SubscribeSync("host.secrets")
	err3 := c.Publish("host.commands", []byte("shutdown"))
	all, err4 := c.SubscribeSync(">")
	seen, err5 := c.Subscribe(prefix+"seen", func(m *clientlib.Msg) { respond(m, seenUpTo(all, m)) })
	// Reading another connection's inbox takes the monitor verb, which no
	// rule here grants: this is refused whatever the policy, so once its
	// refusal is in, so is that of every frame before it.
	snoop, err6 := c.SubscribeSync(hostInbox + ".>")
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return err // not the broker's refusals, which come later: the client's own checks
	}
	refused := map[*clientlib.Subscription]error{} // a publish's under nil
	for refused[snoop] == nil {
		r := <-refusals
		refused[r.sub] = r.err
	}
	fmt.Printf("plugin: subscribe %secho and %sseen: %s\n", prefix, prefix, outcome(errors.Join(refused[echo], refused[seen])))
	fmt.Println("plugin: subscribe host.secrets:", outcome(refused[secrets]))
	fmt.Println("plugin: publish host.commands:", outcome(refused[nil]))
	// Allowed, but the broker delivers it only the topics the policy lets
	// this uid subscribe to: the host shows which it got.
	fmt.Println("plugin: subscribe >:", outcome(refused[all]))
	fmt.Printf("plugin: subscribe %s (the host's replies): %s\n", snoop.Pattern(), outcome(refused[snoop]))
	fmt.Println(readyLine)
	_, err = io.Copy(io.Discard, os.Stdin) // the host closes it to stop the plugin
	return err
}

// outcome says what the broker did with a try it refused with err, or let
// through if err is nil.
func outcome(err error) string {
	if err == nil {
		return "allowed"
	} else if errors.Is(err, clientlib.ErrPermissionDenied) {
		return "denied (" + err.Error() + ")"
	}
	return "failed (" + err.Error() + ")"
}

// respond answers a request, telling stderr if it cannot.
func respond(m *clientlib.Msg, data []byte) {
	if err := m.Respond(data); err != nil {
		fmt.Fprintf(os.Stderr, "plugin: answering %s: %v\n", m.Topic, err)
	}
}

// seenUpTo answers a "seen" request with the topics all (the ">"
// subscription) got, up to this request itself, which all gets too: what
// the host published before it is queued by then, in order.
func seenUpTo(all *clientlib.Subscription, req *clientlib.Msg) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var topics []string
	for {
		m, err := all.Next(ctx)
		if err != nil {
			return []byte(strings.Join(append(topics, "("+err.Error()+")"), ", "))
		}
		if topics = append(topics, m.Topic); m.Reply == req.Reply {
			return []byte(strings.Join(topics, ", "))
		}
	}
}
