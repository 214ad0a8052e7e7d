package clientlib

import (
	"errors"
	"strings"
	"testing"

	"github.com/busd/busd/bus"
)

// A subscription WithRetained gets the values retained before it, flagged,
// then the live messages; each such subscription gets the values, even on
// one pattern of one connection; an empty retained publish clears.
func TestSubscriptionWithRetained(t *testing.T) {
	path, _ := startBus(t)
	pub := connect(t, path)
	if err := pub.PublishRetained("state.door", []byte("open")); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishRetainedMsg(&Msg{Topic: "state.light", Header: Header{{"k", "v"}}, Data: []byte("on")}); err != nil {
		t.Fatal(err)
	}
	flush(t, pub)

	c := connect(t, path)
	var subs []*Subscription
	for range 2 {
		s, err := c.SubscribeSync("state.*", WithRetained())
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	for _, s := range subs {
		if m := next(t, s); m.Topic != "state.door" || string(m.Data) != "open" || !m.Retained() || m.Origin.Conn != pub.ConnID() {
			t.Fatalf("first message %q %q retained %v from %d; want the door's value from %d", m.Topic, m.Data, m.Retained(), m.Origin.Conn, pub.ConnID())
		}
		if m := next(t, s); m.Topic != "state.light" || m.Header.Get("k") != "v" || !m.Retained() {
			t.Fatalf("second message %q %v retained %v; want the light's value with its header", m.Topic, m.Header, m.Retained())
		}
	}
	if err := pub.PublishRetained("state.door", nil); err != nil { // clears
		t.Fatal(err)
	}
	for _, s := range subs {
		if m := next(t, s); m.Topic != "state.door" || len(m.Data) != 0 || m.Retained() {
			t.Fatalf("live message %q %q retained %v; want the empty clear, live", m.Topic, m.Data, m.Retained())
		}
	}
	late, err := c.SubscribeSync("state.door", WithRetained())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	if n := queued(t, late); n != 0 {
		t.Fatalf("%d messages for a cleared value; want none", n)
	}

	if _, err := c.QueueSubscribeSync("state.*", "g", WithRetained()); err == nil {
		t.Fatal("a queue group subscription WithRetained was accepted")
	}
	if err := pub.PublishRetainedMsg(&Msg{Topic: "x", Reply: "r"}); err == nil {
		t.Fatal("a retained message with a reply topic was accepted")
	}
}

// A retained publish the broker will not keep is refused with
// ErrRetainRefused.
func TestPublishRetainedRefused(t *testing.T) {
	path, _ := startBusWith(t, func(c *bus.Config) { c.MaxRetained = 16 })
	errs := make(chan error, 1)
	c := connect(t, path, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs <- err }))
	if err := c.PublishRetained("big", []byte(strings.Repeat("x", 32))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, ErrRetainRefused) {
			t.Fatalf("refusal %v; want ErrRetainRefused", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("no refusal")
	}
}

// After a reconnect a subscription WithRetained gets the current values
// again, flagged, and then the live messages.
func TestRetainedAgainAfterReconnect(t *testing.T) {
	path, _, c, events := eventConn(t)
	pub := connect(t, path)
	if err := pub.PublishRetained("r.v", []byte("1")); err != nil {
		t.Fatal(err)
	}
	flush(t, pub)
	s, err := c.SubscribeSync("r.v", WithRetained())
	if err != nil {
		t.Fatal(err)
	}
	if m := next(t, s); !m.Retained() || string(m.Data) != "1" {
		t.Fatalf("got %q retained %v", m.Data, m.Retained())
	}
	cutSession(t, c)
	nextConnEvent(t, events, "disconnected")
	nextConnEvent(t, events, "reconnected")
	if m := next(t, s); !m.Retained() || string(m.Data) != "1" {
		t.Fatalf("after the reconnect: got %q retained %v; want the value again", m.Data, m.Retained())
	}
	if err := pub.PublishRetained("r.v", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, s); m.Retained() || string(m.Data) != "2" {
		t.Fatalf("got %q retained %v; want the live update", m.Data, m.Retained())
	}
}

// BrokerRetained lists the values, sorted, with their publishers.
func TestBrokerRetained(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	c.PublishRetained("b", []byte("12"))
	c.PublishRetainedMsg(&Msg{Topic: "a", Header: Header{{"k", "v"}}, Data: []byte("1")})
	flush(t, c)
	values, total, err := c.BrokerRetained(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(values) != 2 || values[0].Topic != "a" || values[0].Size != 2+1+2+1+1 ||
		values[1].Topic != "b" || values[1].Size != 2 || values[1].Origin.Conn != c.ConnID() || values[1].Since.IsZero() {
		t.Fatalf("retained %+v (total %d); want a then b, from this connection", values, total)
	}
}
