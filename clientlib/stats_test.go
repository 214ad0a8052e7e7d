package clientlib

import (
	"os"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// Stats counts what a connection published and read, in messages and
// framed bytes.
func TestConnStatsCountsMessages(t *testing.T) {
	path, _ := startBus(t)
	pub, sub := connect(t, path), connect(t, path)
	s, err := sub.SubscribeSync("app.>")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, sub)
	for range 3 {
		if err := pub.Publish("app.x", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		next(t, s)
	}
	frame := uint64(wire.HeaderLen + len("app.x") + len("hello"))
	if st := pub.Stats(); st.MsgsOut != 3 || st.BytesOut != 3*frame || st.MsgsIn != 0 || st.Reconnects != 0 {
		t.Fatalf("publisher's stats %+v; want 3 messages of %d bytes out", st, frame)
	}
	msg := frame + wire.MsgHeadLen - wire.HeaderLen // a MSG has the origin besides
	if st := sub.Stats(); st.MsgsIn != 3 || st.BytesIn != 3*msg || st.MsgsOut != 0 || st.Dropped != 0 {
		t.Fatalf("subscriber's stats %+v; want 3 messages of %d bytes in", st, msg)
	}
}

// BrokerConns, BrokerSubs and BrokerStats decode the broker's answers.
func TestBrokerStatsHelpers(t *testing.T) {
	path, _ := startBus(t)
	a, b := connect(t, path, WithName("a")), connect(t, path, WithName("b"))
	if _, err := b.QueueSubscribeSync("jobs.*", "workers"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SubscribeSync("audit.>", AsMonitor()); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	ctx := testCtx(t)
	conns, all, err := a.BrokerConns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !all || len(conns) != 2 || conns[0].Name != "a" || conns[1].Name != "b" || conns[1].Subs != 2 ||
		conns[0].PID != os.Getpid() || conns[0].ConnID != a.ConnID() || conns[0].Since.IsZero() {
		t.Fatalf("BrokerConns: %+v, all %v; want a and b, b with two subscriptions", conns, all)
	}
	subs, total, all, err := a.BrokerSubs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []SubStats{{Pattern: "jobs.*", Group: "workers", Subs: 1}, {Pattern: "audit.>", Monitors: 1}} {
		if !all || total != len(subs) || !containsSub(subs, want) {
			t.Fatalf("BrokerSubs: %+v (total %d, all %v); want %+v among them", subs, total, all, want)
		}
	}
	st, err := a.BrokerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Conns != 2 || st.Subs != uint64(total) || st.Requests != 3 {
		t.Fatalf("BrokerStats: %+v; want 2 connections, %d subscriptions, 3 requests", st, total)
	}
}

func containsSub(subs []SubStats, want SubStats) bool {
	for _, s := range subs {
		if s == want {
			return true
		}
	}
	return false
}

// Stats counts reconnects, and the messages a subscription's full queue
// dropped.
func TestConnStatsCountsReconnectsAndDrops(t *testing.T) {
	path, _, c, events := eventConn(t, WithSubscriptionLimits(1, 1<<20))
	sub, err := c.SubscribeSync("full")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	pub := connect(t, path)
	for range 3 {
		if err := pub.Publish("full", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, pub)
	flush(t, c) // the PONG comes after the MSGs, which are queued or dropped by then
	if st := c.Stats(); st.Dropped != sub.Dropped() || st.Dropped != 2 || st.MsgsIn != 3 {
		t.Fatalf("stats %+v, subscription dropped %d; want 3 messages in, 2 of them dropped", st, sub.Dropped())
	}

	cutSession(t, c)
	nextConnEvent(t, events, "disconnected")
	nextConnEvent(t, events, "reconnected")
	if st := c.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats %+v after a reconnect; want 1 reconnect", st)
	}
}
