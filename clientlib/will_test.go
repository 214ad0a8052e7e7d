package clientlib

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
)

// willWatcher subscribes to wills on topic and to connections' down
// events: a will comes before its connection's down event.
func willWatcher(t *testing.T, path, topic string) (wills, downs *Subscription) {
	w := connect(t, path)
	wills, err := w.SubscribeSync(topic)
	if err != nil {
		t.Fatal(err)
	}
	if downs, err = w.SubscribeSync("$SYS.conn.down.>"); err != nil {
		t.Fatal(err)
	}
	flush(t, w)
	return wills, downs
}

// waitDown waits for the down event of connection id.
func waitDown(t *testing.T, downs *Subscription, id uint64) {
	t.Helper()
	for {
		if m := next(t, downs); strings.HasSuffix(m.Topic, fmt.Sprintf(".%d", id)) {
			return
		}
	}
}

// A connection cut without Close has its will published, from it; after
// the reconnect the will is set again, and published again at the next
// cut. Close publishes none.
func TestWillPublishedUnlessClosed(t *testing.T) {
	path, _ := startBus(t)
	wills, downs := willWatcher(t, path, "wills.>")
	opts, events := eventOptions()
	c := connect(t, path, append(opts, WithWill("wills.app", []byte("gone"), WillHeader(Header{{"why", "crash"}})))...)
	for range 2 {
		id := c.ConnID()
		cutSession(t, c)
		if m := next(t, wills); string(m.Data) != "gone" || m.Origin.Conn != id || m.Header.Get("why") != "crash" {
			t.Fatalf("will %q %v from %d; want gone from %d", m.Data, m.Header, m.Origin.Conn, id)
		}
		nextConnEvent(t, events, "disconnected")
		nextConnEvent(t, events, "reconnected")
		flush(t, c)
	}
	id := c.ConnID()
	c.Close()
	waitDown(t, downs, id)
	if n := queued(t, wills); n != 0 {
		t.Fatalf("%d wills after Close; want none", n)
	}
}

// A retained will is the topic's value once published.
func TestWillRetained(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path, WithNoReconnect(), WithWill("presence.app", []byte("offline"), WillRetained()))
	if err := c.PublishRetained("presence.app", []byte("online")); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	cutSession(t, c)
	late := connect(t, path)
	s, err := late.SubscribeSync("presence.app", WithRetained())
	if err != nil {
		t.Fatal(err)
	}
	for {
		m := next(t, s)
		if string(m.Data) == "offline" {
			return
		}
		if !m.Retained() || string(m.Data) != "online" {
			t.Fatalf("got %q retained %v; want online, then offline", m.Data, m.Retained())
		}
	}
}

// Connect fails when the broker refuses the will.
func TestWillRefusedFailsConnect(t *testing.T) {
	path, _ := startBusWith(t, func(c *bus.Config) { c.MaxRetained = 8 })
	_, err := Connect(testCtx(t), WithSocket(path), WithWill("w", []byte("far too long")))
	if err == nil || !strings.Contains(err.Error(), "max_retained") {
		t.Fatalf("Connect: %v; want the will refused over max_retained", err)
	}
	if _, err := Connect(testCtx(t), WithSocket(path), WithWill("a..b", nil)); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("Connect: %v; want ErrInvalidTopic", err)
	}
}

// A will the broker refuses after a reconnect (here: a new policy forbids
// its topic) is reported to the error handler, since nobody waits for
// that answer.
func TestWillRefusedAfterReconnectIsReported(t *testing.T) {
	path, srv := startBus(t)
	errs := make(chan error, 4)
	opts, events := eventOptions()
	opts = append(opts, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs <- err }),
		WithWill("wills.app", []byte("gone")))
	c := connect(t, path, opts...)
	p, err := policy.Parse("test.policy", strings.NewReader(fmt.Sprintf("deny uid %d publish wills.>", os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetPolicy(p)
	cutSession(t, c)
	nextConnEvent(t, events, "disconnected")
	nextConnEvent(t, events, "reconnected")
	select {
	case err := <-errs:
		if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "last will") {
			t.Fatalf("error handler got %v; want the will refused, permission denied", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("the refused will was not reported")
	}
}
