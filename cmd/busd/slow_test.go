package main

// Receivers that do not keep up: they cost their publishers a bounded
// wait and then only themselves, and every message they lose is reported
// (docs/SECURITY.md, "Pacing" and "Delivery, losses and gap notices").

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
)

// A subscriber that never reads, fed 1 MiB messages: the publisher
// finishes, a reading subscriber gets every message or notices that
// account exactly for what it lost, and the stopped ones, when they
// finally read, get a prefix and a notice that adds up (policy drop) or
// the slow-consumer ERR before the end of the stream (policy disconnect).
func TestStoppedSubscriberWithLargeMessages(t *testing.T) {
	b := start(t, bustest.Options{Args: []string{
		"-max-pending", "4194304",
		"-write-timeout", "1m", // the stopped ones read late, however slow the machine
	}})
	reading := b.Subscribe(t, "reading", "flood", "", 0)
	dropping := b.Subscribe(t, "stopped-drop", "flood", "", 0)
	strict := b.Subscribe(t, "stopped-disconnect", "flood", "", wire.SubDisconnect)
	pub := b.Connect(t, "publisher")

	const n, size = 32, 1 << 20 // 32 MiB: far past a stopped one's queue and socket buffer
	sent := publish(pub, "flood", n, size)
	read := make(chan tally, 1)
	readErr := make(chan error, 1)
	go func() {
		ta, err := account(reading, n)
		read <- ta
		readErr <- err
	}()
	await(t, "the publisher's PONG", sent)
	await(t, "the reading subscriber", readErr)
	fast := <-read
	t.Logf("reading subscriber: %d messages, %d lost in %d notices", fast.got, fast.lost, fast.notices)

	slow, err := account(dropping, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped subscriber (drop): %d messages, %d lost in %d notices: %q", slow.got, slow.lost, slow.notices, slow.reasons)
	if slow.lost == 0 || slow.got == 0 {
		t.Fatalf("the stopped subscriber got %d and lost %d of %d: want a prefix and a loss", slow.got, slow.lost, n)
	}
	for _, r := range slow.reasons {
		if !namesALimit.MatchString(r) {
			t.Errorf("gap notice reason %q names no limit and its value", r)
		}
	}
	dropping.Sync() // and it is still served

	got := 0
	for {
		f := strict.Next()
		if f.Op == wire.OpErr {
			e, _ := bustest.DecodeErr(f)
			if e.Code != wire.CodeSlowConsumer || !namesALimit.MatchString(e.Text) {
				t.Fatalf("got ERR %v %q; want slow consumer naming the limit and its value", e.Code, e.Text)
			}
			break
		}
		if f.Op != wire.OpMsg || int(binary.BigEndian.Uint32(f.Payload)) != got {
			t.Fatalf("frame %d: %v; want message %d or the ERR", got, f.Op, got)
		}
		got++
	}
	if err := closedAfter(strict); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped subscriber (disconnect): %d messages, then the ERR, then the end", got)
	if got >= n {
		t.Fatalf("all %d messages came before the ERR: nothing was refused", got)
	}
	for _, c := range []*bustest.RawConn{reading, dropping, pub} {
		c.Close()
	}
	b.after()
}

// A subscriber reading 64 KiB every 90 ms: an unrelated client's round
// trips stay prompt (measured and logged; asserted only within the
// watchdog) and the publisher feeding the slow one is not held to its
// pace: at that pace 64 MiB would take 90 s, past the watchdog.
func TestSlowReaderDoesNotHoldOthers(t *testing.T) {
	b := start(t, bustest.Options{Args: []string{"-max-pending", "8388608"}})
	slow := b.Subscribe(t, "slow", "slow", "", 0)
	stopReading := make(chan struct{})
	readBytes := make(chan int, 1)
	go func() { // 64 KiB every 90 ms, about 0.7 MB/s
		buf, total := make([]byte, 64<<10), 0
		tick := time.NewTicker(90 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopReading:
				readBytes <- total
				return
			case <-tick.C:
			}
			slow.Sock.SetReadDeadline(time.Now().Add(watchdog))
			n, err := slow.Sock.Read(buf)
			total += n
			if err != nil {
				readBytes <- total
				return
			}
		}
	}()
	other := b.Subscribe(t, "unrelated", "other", "", 0)
	pub := b.Connect(t, "publisher")

	const n, size = 64 << 10, 1 << 10 // 64 MiB
	began := time.Now()
	sent := publish(pub, "slow", n, size)
	var rtts []time.Duration
	for done := false; !done || len(rtts) < 20; {
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("publisher: %v", err)
			}
			t.Logf("the publisher finished 64 MiB in %v", time.Since(began))
			done = true
		default:
		}
		t0 := time.Now()
		other.Send(wire.AppendPub(nil, "other", "", nil, []byte("rt"), 0))
		if f := other.Next(); f.Op != wire.OpMsg {
			t.Fatalf("round trip %d: got %v", len(rtts), f.Op)
		}
		other.Sync()
		rtts = append(rtts, time.Since(t0))
		if !done && time.Since(began) > watchdog {
			t.Fatalf("the publisher did not finish within %v: it is held to the slow reader's pace", watchdog)
		}
	}
	close(stopReading)
	slow.Close() // ends a read under way
	slices.Sort(rtts)
	t.Logf("unrelated round trips while the slow reader was fed: %d, median %v, 99th %v, max %v; the slow reader read %d bytes",
		len(rtts), rtts[len(rtts)/2], rtts[len(rtts)*99/100], rtts[len(rtts)-1], <-readBytes)
	other.Close()
	pub.Close()
	b.after()
}

// A queue group member that never reads does not lose the group's
// messages: once its queue is full the other member takes them, and no
// message is lost or delivered twice.
func TestQueueGroupWithAStoppedMember(t *testing.T) {
	b := start(t, bustest.Options{Args: []string{
		"-max-pending", "4194304",
		"-stall-budget", "1s", // the reading member is always waited for, however loaded the machine
		"-write-timeout", "1m", // the stopped member is read at the end
	}})
	stopped := b.Subscribe(t, "stopped-member", "jobs", "workers", 0)
	reading := b.Subscribe(t, "reading-member", "jobs", "workers", 0)
	pub := b.Connect(t, "publisher")

	// 24 MB: several times what the stopped member's queue (4 MiB) and
	// socket buffer hold, so that most jobs must go to the reading one.
	const n, size = 24000, 1 << 10
	sent := publish(pub, "jobs", n, size)
	fromReading := make(chan []int, 1)
	readErr := make(chan error, 1)
	go func() {
		jobs, err := jobsUntilPong(reading, 42)
		fromReading <- jobs
		readErr <- err
	}()
	await(t, "the publisher's PONG", sent)
	reading.Send(wire.AppendControl(nil, wire.OpPing, 42, nil)) // after every job was routed
	await(t, "the reading member", readErr)
	stopped.Send(wire.AppendControl(nil, wire.OpPing, 42, nil))
	took, err := jobsUntilPong(stopped, 42)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, n)
	for _, i := range append(<-fromReading, took...) {
		seen[i]++
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("job %d delivered %d times", i, k)
		}
	}
	t.Logf("the stopped member took %d jobs, the reading one %d", len(took), n-len(took))
	if len(took) == 0 || len(took) > n/3 {
		t.Fatalf("the stopped member took %d of %d jobs: its queue never filled; this test tests nothing", len(took), n)
	}
	for _, c := range []*bustest.RawConn{stopped, reading, pub} {
		c.Close()
	}
	b.after()
}

// namesALimit matches a text that names a limit with its value: which
// limit a slow receiver runs into first (its queue, the pace mark, its
// user's budget) is the broker's business; that it says which, and how
// much, is the contract.
var namesALimit = regexp.MustCompile(`[0-9]+ (bytes|descriptors)`)

// jobsUntilPong reads numbered messages until the PONG with id and returns
// their numbers; a gap notice or any other frame is an error.
func jobsUntilPong(c *bustest.RawConn, id uint32) ([]int, error) {
	var got []int
	for {
		f, err := c.Read(watchdog)
		switch {
		case err != nil:
			return got, err
		case f.Op == wire.OpPong && f.ID == id:
			return got, nil
		case f.Op != wire.OpMsg || f.Origin.Conn == 0:
			return got, fmt.Errorf("after %d jobs: %v from connection %d (a gap notice is a lost job)", len(got), f.Op, f.Origin.Conn)
		}
		got = append(got, int(binary.BigEndian.Uint32(f.Payload)))
	}
}
