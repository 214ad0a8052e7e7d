package clientlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
)

// A third party's forged reply is refused, reported to its error handler
// as ErrPermissionDenied, and never reaches the requester, which gets the
// real reply; subscribing to the requester's inbox is refused too.
func TestForgedReplyIsRefused(t *testing.T) {
	path, _ := startBus(t)
	service := connect(t, path)
	requests := make(chan *Msg, 1)
	if _, err := service.Subscribe("svc", func(m *Msg) { requests <- m }); err != nil {
		t.Fatal(err)
	}
	flush(t, service)
	requester := connect(t, path)
	errs := make(chan error, 4)
	forger := connect(t, path, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs <- err }))

	replies := make(chan *Msg, 1)
	go func() {
		r, err := requester.Request(testCtx(t), "svc", []byte("q"))
		if err != nil {
			t.Error(err)
		}
		replies <- r
	}()
	req := <-requests
	if !strings.HasPrefix(req.Reply, fmt.Sprintf("_INBOX.%d.", requester.ConnID())) {
		t.Fatalf("reply topic %q is not in the requester's inbox", req.Reply)
	}
	if err := forger.Publish(req.Reply, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	flush(t, forger)
	if err := <-errs; !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("the forger was told %v; want ErrPermissionDenied", err)
	}
	spy, err := forger.SubscribeSync(req.Reply)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spy.Next(testCtx(t)); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("subscribing to the requester's inbox: %v; want ErrPermissionDenied", err)
	}
	if err := req.Respond([]byte("real")); err != nil {
		t.Fatal(err)
	}
	if r := <-replies; r == nil || string(r.Data) != "real" || r.Origin.Conn != service.ConnID() {
		t.Fatalf("the requester got %+v; want the service's reply", r)
	}
}

// A policy's denial of a subscription reaches the subscription, naming
// the rule.
func TestPolicyDenialReachesTheSubscription(t *testing.T) {
	p, err := policy.Parse("test.policy", strings.NewReader(fmt.Sprintf("deny uid %d subscribe secret.>", os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := startBusWith(t, func(c *bus.Config) { c.Policy = p })
	c := connect(t, path)
	s, err := c.SubscribeSync("secret.plans")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Next(testCtx(t))
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "rule at line 1") {
		t.Fatalf("Next: %v; want ErrPermissionDenied naming rule at line 1", err)
	}
}

// A request whose PUB the policy refuses fails at once with the refusal,
// instead of waiting out its context; LastRefusal reports a refused
// publish once Flush returns.
func TestRefusedRequestFailsAtOnce(t *testing.T) {
	p, err := policy.Parse("test.policy", strings.NewReader(fmt.Sprintf("deny uid %d publish admin.>", os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := startBusWith(t, func(c *bus.Config) { c.Policy = p })
	c := connect(t, path, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) {
		t.Errorf("the error handler got %v; the request should have", err)
	}))
	_, err = c.Request(context.Background(), "admin.reset", nil) // no deadline: only the refusal can end it
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), `request to "admin.reset" refused: permission denied`) {
		t.Fatalf("Request: %v; want ErrPermissionDenied naming the topic", err)
	}
	if err := c.LastRefusal(); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("LastRefusal after a refused request: %v", err)
	}

	d := connect(t, path, WithErrorHandler(func(*Conn, *Subscription, error) {}))
	if err := d.Publish("open.topic", nil); err != nil {
		t.Fatal(err)
	}
	flush(t, d)
	if err := d.LastRefusal(); err != nil {
		t.Fatalf("LastRefusal with nothing refused: %v", err)
	}
	if err := d.Publish("admin.x", nil); err != nil {
		t.Fatal(err)
	}
	flush(t, d)
	if err := d.LastRefusal(); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("LastRefusal after a refused publish and Flush: %v", err)
	}
}
