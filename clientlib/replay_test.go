package clientlib

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// undeliveredOptions returns an error handler that sends every
// *UndeliveredError to the channel it returns.
func undeliveredOptions() (Option, chan *UndeliveredError) {
	ch := make(chan *UndeliveredError, 64)
	return WithErrorHandler(func(_ *Conn, _ *Subscription, err error) {
		if u, ok := errors.AsType[*UndeliveredError](err); ok {
			ch <- u
		}
	}), ch
}

// Messages published while reconnecting are either delivered or reported
// to the error handler, with their content, as not delivered: the Conn's
// own restored subscription gets those on its topic (its SUB goes first);
// those on a topic nobody subscribes to any more (the other subscriber
// did not reconnect) come back in the order published.
func TestUndeliveredPublishesAreReported(t *testing.T) {
	path, srv := startBus(t)
	opts, events := eventOptions()
	onErr, undelivered := undeliveredOptions()
	c := connect(t, path, append(opts, onErr)...)
	own, err := c.SubscribeSync("own")
	if err != nil {
		t.Fatal(err)
	}
	gone := connect(t, path, WithNoReconnect())
	if _, err := gone.SubscribeSync("theirs"); err != nil {
		t.Fatal(err)
	}
	flush(t, gone)
	flush(t, c)

	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	const n = 5
	for i := range n {
		for _, topic := range []string{"own", "theirs"} {
			if err := c.PublishMsg(&Msg{Topic: topic, Header: HeaderOf("N", fmt.Sprint(i)), Data: []byte(fmt.Sprint(topic, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	serveOn(t, path)
	if e := nextConnEvent(t, events, "reconnected"); e.restored.Messages != 2*n {
		t.Fatalf("restored %+v; want %d messages buffered", e.restored, 2*n)
	}
	for i := range n {
		if m := next(t, own); string(m.Data) != fmt.Sprint("own", i) {
			t.Fatalf("own subscription got %q; want %q", m.Data, fmt.Sprint("own", i))
		}
	}
	for i := range n {
		var u *UndeliveredError
		select {
		case u = <-undelivered:
		case <-testCtx(t).Done():
			t.Fatalf("%d of %d undelivered messages reported", i, n)
		}
		want := fmt.Sprint("theirs", i)
		if !errors.Is(u, ErrNotDelivered) || u.Msg.Topic != "theirs" || string(u.Msg.Data) != want || u.Msg.Header.Get("N") != fmt.Sprint(i) {
			t.Fatalf("report %d: %v (%q, %v); want %q not delivered", i, u, u.Msg.Data, u.Msg.Header, want)
		}
	}
	flush(t, c) // every receipt has come: nothing more to report
	select {
	case u := <-undelivered:
		t.Fatalf("reported as well: %v", u)
	default:
	}
	c.mu.Lock()
	left := len(c.replays)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d copies kept after every receipt came", left)
	}
	// Published live, a message asks for no receipt.
	if err := c.Publish("theirs", []byte("live")); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	select {
	case u := <-undelivered:
		t.Fatalf("a live publish was reported: %v", u)
	default:
	}
}

// Close while reconnecting reports what was buffered, with ErrClosed, in
// order: nothing is dropped without a word.
func TestCloseReportsTheBufferedPublishes(t *testing.T) {
	path, srv := startBus(t)
	opts, events := eventOptions()
	onErr, undelivered := undeliveredOptions()
	c := connect(t, path, append(opts, onErr)...)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	for i := range 3 {
		if err := c.Publish("x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	nextConnEvent(t, events, "closed") // the reports came before it
	var got []byte
	for len(undelivered) > 0 {
		u := <-undelivered
		if !errors.Is(u, ErrClosed) {
			t.Fatalf("report %v; want ErrClosed", u)
		}
		got = append(got, u.Msg.Data...)
	}
	if !slices.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("reported %v; want the three messages in order", got)
	}
}
