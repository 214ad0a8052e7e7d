package bus

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// smallPending gives the broker a MaxPending of four 1 MiB messages, so a
// test reaches it quickly.
func smallPending(cfg *Config) {
	cfg.Limits.MaxPayload = 1 << 20
	cfg.MaxPending = 4 << 20
}

// publishBig sends n messages of 1 MiB to topic from a goroutine (the
// broker may hold the publisher back) and reports the first error.
func publishBig(c *rawClient, topic string, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := range n {
			payload := bytes.Repeat([]byte{byte(i)}, 1<<20)
			if _, err := c.sock.Write(wire.AppendPub(nil, topic, "", nil, payload, 0)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

func TestSlowSubscriberOfLargeMessagesIsPacedNotCutOff(t *testing.T) {
	_, path := testBroker(t, smallPending)
	sub := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	const n = 24 // 24 MiB against a 4 MiB MaxPending
	sent := publishBig(pub, "big", n)
	for i := range n {
		f := sub.next()
		if f.Op == wire.OpErr {
			t.Fatalf("message %d: a live subscriber was cut off: %s", i, decodeErrFrame(t, f).Text)
		}
		if len(f.Payload) != 1<<20 || f.Payload[0] != byte(i) {
			t.Fatalf("message %d: %d bytes starting %d", i, len(f.Payload), f.Payload[0])
		}
		time.Sleep(10 * time.Millisecond) // slower than the publisher, but reading
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestStuckSubscriberDoesNotHoldThePublisher(t *testing.T) {
	_, path := testBroker(t, smallPending)
	stuck := subscriber(t, path, "big") // subscribes and never reads
	fast := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	const n = 24
	sent := publishBig(pub, "big", n)
	for i := range n {
		if f := fast.next(); f.Op != wire.OpMsg || f.Payload[0] != byte(i) {
			t.Fatalf("fast subscriber, message %d: %v", i, f.Op)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// The stuck one was cut off as a slow consumer: what it finally reads
	// ends with the broker's ERR.
	for {
		f, err := stuck.tryNext(5 * time.Second)
		if err != nil {
			t.Fatalf("stuck subscriber: %v before the slow-consumer ERR", err)
		}
		if f.Op == wire.OpErr {
			if e := decodeErrFrame(t, f); e.Code != wire.CodeSlowConsumer {
				t.Fatalf("stuck subscriber got %v; want slow consumer", e)
			}
			return
		}
	}
}

func decodeErrFrame(t *testing.T, f wire.Frame) wire.Error {
	t.Helper()
	var e wire.Error
	if err := wire.DecodeBody(f.Payload, &e); err != nil {
		t.Fatal(fmt.Errorf("ERR body: %w", err))
	}
	return e
}

// A subscriber that reads a little at a time, never pausing long but far
// slower than the publisher, is alive: the broker reads its progress from
// the socket and waits for it rather than cutting it off.
func TestTrickleReaderIsPacedNotCutOff(t *testing.T) {
	_, path := testBroker(t, smallPending)
	sub := subscriber(t, path, "big")
	pub := connectRaw(t, path)
	const n = 8
	sent := publishBig(pub, "big", n)
	frame := wire.HeaderLen + wire.OriginLen + len("big") + 1<<20
	all := make([]byte, n*frame)
	for got := 0; got < len(all); {
		sub.sock.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := sub.sock.Read(all[got:min(got+128<<10, len(all))])
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v (cut off?)", got, len(all), err)
		}
		got += k
		time.Sleep(20 * time.Millisecond) // about 6 MiB/s: slower than the publisher
	}
	for i := range n {
		f := all[i*frame:]
		if h, err := wire.DecodeHeader(f, &wire.DefaultLimits); err != nil || h.Op != wire.OpMsg || f[frame-1] != byte(i) {
			t.Fatalf("frame %d: %v %v", i, h.Op, err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// A publisher whose connection breaks while its reader waits for a slow
// receiver: the reader must leave the wait cleanly (it once left a nil in
// its list of stalled receivers, and the broker died on it).
func TestPublisherGoneWhileWaitingForAReceiver(t *testing.T) {
	_, path := testBroker(t, smallPending)
	sub := subscriber(t, path, "big")
	pub := subscriber(t, path, "poke")
	sent := publishBig(pub, "big", 24)
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		for range 24 {
			if _, err := sub.tryNext(time.Second); err != nil {
				return
			}
			time.Sleep(40 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond) // the publisher's reader is waiting now
	pub.sock.Close()
	<-sent
	poker := connectRaw(t, path)
	for range 20 { // messages to the gone publisher end its connection
		poker.pub("poke", "x")
	}
	poker.sync()
	<-reading
	// The broker still serves.
	c := subscriber(t, path, "alive")
	c.pub("alive", "yes")
	if f := c.next(); f.Op != wire.OpMsg || string(f.Payload) != "yes" {
		t.Fatalf("after the publisher left: %v %q", f.Op, f.Payload)
	}
}
