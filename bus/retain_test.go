package bus

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// retainPub is a retained PUB frame.
func retainPub(topic, payload string, nfds int) []byte {
	b := wire.AppendPub(nil, topic, "", nil, []byte(payload), nfds)
	b[2] = wire.PubRetain
	return b
}

func (c *rawClient) retain(topic, payload string) { c.send(retainPub(topic, payload, 0)) }

func (c *rawClient) subRetained(sid uint32, pattern string, flags uint8) {
	c.send(wire.AppendSub(nil, sid, pattern, "", flags|wire.SubRetained))
}

// expectValue reads a MSG and checks its subscription, topic, payload and
// whether it is a retained value; it returns it.
func (c *rawClient) expectValue(sid uint32, topic, payload string, retained bool) wire.Frame {
	c.t.Helper()
	f := c.next()
	if f.Op != wire.OpMsg || f.ID != sid || string(f.Topic) != topic || string(f.Payload) != payload ||
		(f.Flags&wire.MsgRetained != 0) != retained {
		c.t.Fatalf("got %v id %d %q %q flags %#x; want MSG id %d %q %q retained %v",
			f.Op, f.ID, f.Topic, f.Payload, f.Flags, sid, topic, payload, retained)
	}
	return f
}

// A value retained before a subscriber comes is the first thing its
// retained-first subscription gets, flagged, from the original publisher;
// then the live messages, plain. A subscription without the flag gets
// only the live ones.
func TestRetainedValueFirstThenLive(t *testing.T) {
	_, path := testBroker(t, nil)
	pub := connectRaw(t, path)
	pub.retain("room.temp", "20")
	pub.retain("room.hum", "40")
	pub.retain("other", "x")
	pub.sync()
	if info := pub.info; !info.Retain || info.MaxRetained != wire.DefaultMaxRetained {
		t.Fatalf("INFO retain %v max_retained %d; want true, %d", info.Retain, info.MaxRetained, wire.DefaultMaxRetained)
	}

	sub := connectRaw(t, path)
	sub.subRetained(1, "room.*", 0)
	sub.sub(2, "room.*", "")
	f := sub.expectValue(1, "room.hum", "40", true) // sorted by topic
	if f.Origin.Conn != pub.info.ConnID {
		t.Fatalf("retained value from conn %d; want the publisher's, %d", f.Origin.Conn, pub.info.ConnID)
	}
	sub.expectValue(1, "room.temp", "20", true)
	sub.sync()

	pub.retain("room.temp", "21")
	got := map[uint32]bool{}
	for range 2 {
		f := sub.next()
		if f.Op != wire.OpMsg || string(f.Payload) != "21" || f.Flags != 0 {
			t.Fatalf("got %v %q flags %#x; want the live update", f.Op, f.Payload, f.Flags)
		}
		got[f.ID] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("live update reached %v; want both subscriptions", got)
	}

	// The value outlives its publisher's connection.
	pub.sock.Close()
	late := connectRaw(t, path)
	late.subRetained(1, "room.temp", 0)
	late.expectValue(1, "room.temp", "21", true)
	late.quiet()
}

// An empty retained publish clears the value (and is delivered live);
// anyone who may publish to the topic may clear it.
func TestRetainedEmptyPublishClears(t *testing.T) {
	srv, path := testBroker(t, nil)
	a := connectRaw(t, path)
	a.retain("s.1", "on")
	a.sync()
	live := connectRaw(t, path)
	live.sub(1, "s.1", "")
	live.sync()

	b := connectRaw(t, path) // another connection clears it
	b.retain("s.1", "")
	b.sync()
	live.expectValue(1, "s.1", "", false)

	late := connectRaw(t, path)
	late.subRetained(1, "s.>", 0)
	late.quiet()
	if n := retainedHeld(srv, uint32(os.Getuid())); n != 0 {
		t.Fatalf("uid still charged for %d retained values after the clear", n)
	}
	b.retain("s.1", "") // clearing nothing is no error
	b.sync()
}

// retainedHeld returns how many retained values uid is charged for.
func retainedHeld(srv *Server, uid uint32) int64 {
	srv.led.mu.Lock()
	defer srv.led.mu.Unlock()
	if a := srv.led.users[uid]; a != nil {
		return a.used[kRetained]
	}
	return 0
}

// What the broker will not keep is refused with ERR retain refused, not
// fatal, and not delivered either: descriptors (closed), a reply topic,
// a value over max_retained, inbox, stream and $SYS topics. A
// retained-first SUB in a queue group is refused as invalid group.
func TestRetainedRefusals(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.MaxRetained = 100 })
	live := subscriber(t, path, ">")
	c := connectRaw(t, path)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c.send(retainPub("a.fd", "x", 1), int(w.Fd()))
	w.Close()
	c.expectErr(wire.CodeRetainRefused, "descriptors")
	// The broker closed its copy: the pipe's last writer is gone.
	var buf [1]byte
	if n, err := unix.Read(int(r.Fd()), buf[:]); n != 0 || err != nil {
		t.Fatalf("read from the pipe: %d, %v; want EOF (the broker closed the descriptor)", n, err)
	}

	withReply := wire.AppendPub(nil, "a.r", c.inbox("x"), nil, []byte("x"), 0)
	withReply[2] = wire.PubRetain
	c.send(withReply)
	c.expectErr(wire.CodeRetainRefused, "reply")

	c.retain("a.big", string(make([]byte, 100)))
	c.expectErr(wire.CodeRetainRefused, "max_retained is 100")
	c.retain(c.inbox("x"), "x")
	c.expectErr(wire.CodeRetainRefused, "keep no retained value")
	c.retain("_STREAM.s", "x")
	c.expectErr(wire.CodeRetainRefused, "keep no retained value")
	c.retain("$SYS.x", "x")
	c.expectErr(wire.CodeRetainRefused, "keep no retained value")

	c.send(wire.AppendSub(nil, 5, "a.>", "g", wire.SubRetained))
	c.expectErr(wire.CodeInvalidGroup, "queue group")
	c.sync() // none of them was fatal
	live.quiet()

	c.retain("a.ok", string(make([]byte, 100-len("a.ok"))))
	c.sync()
	live.expectValue(1, "a.ok", string(make([]byte, 96)), false)
}

// A client retaining on thousands of topics hits its uid's budget, which
// the ERR names; another uid can still retain, and a value replaced by
// another uid's publish is charged to that uid from then on.
func TestRetainedBudgetIsPerUID(t *testing.T) {
	const other = 4321
	srv, path := testBroker(t, withPolicy(t, "allow uid 4321 publish,subscribe >"))
	hostile := connectRaw(t, path)
	limit := DefaultConfig().User.Retained
	for i := range limit + 50 {
		hostile.retain("flood."+strconv.Itoa(i), "x")
	}
	for range 50 {
		hostile.expectErr(wire.CodeRetainRefused, "retained values budget is "+strconv.Itoa(limit))
	}
	hostile.sync()
	me := uint32(os.Getuid())
	if n := retainedHeld(srv, me); n != int64(limit) {
		t.Fatalf("uid charged for %d retained values; want %d", n, limit)
	}

	them := dialAs(t, path, other)
	them.retain("theirs", "1")
	them.retain("flood.0", "2") // replaces the hostile uid's value
	them.sync()
	if n, m := retainedHeld(srv, me), retainedHeld(srv, other); n != int64(limit)-1 || m != 2 {
		t.Fatalf("retained values charged: uid %d %d, uid %d %d; want %d and 2", me, n, other, m, limit-1)
	}
	hostile.retain("flood.new", "x") // room again, after the move
	hostile.sync()

	sub := connectRaw(t, path)
	sub.subRetained(1, "flood.0", 0)
	if f := sub.expectValue(1, "flood.0", "2", true); f.Origin.UID != other {
		t.Fatalf("replaced value from uid %d; want %d", f.Origin.UID, other)
	}
}

// A retained-first subscription made while a publisher retains a counter
// in a tight loop gets the value current at its snapshot, then every
// later one, in order: no gap, no duplicate. Several subscriptions join at
// different points, and the publisher spreads the counter over topics.
func TestRetainedFirstRacesWithRetainedPublishes(t *testing.T) {
	_, path := testBroker(t, nil)
	const n, nTopics, nSubs = 4000, 4, 6
	pub := connectRaw(t, path)
	done := make(chan error, 1)
	// The publisher says when it has written each nth of the counter, and
	// a subscriber joins then: some before it starts, the others while it
	// runs.
	progress := make(chan struct{}, nSubs)
	go func() {
		for i := 1; i <= n; i++ {
			if i%(n/nSubs) == 0 {
				progress <- struct{}{}
			}
			if _, err := pub.sock.WriteWithFDs(retainPub("race."+strconv.Itoa(i%nTopics), strconv.Itoa(i), 0), nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	type result struct{ err error }
	results := make(chan result, nSubs)
	for i := range nSubs {
		if i > 0 {
			<-progress
		}
		s := connectRaw(t, path)
		s.subRetained(1, "race.*", 0)
		go func() { results <- result{checkCounter(s, n, nTopics)} }()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range nSubs {
		if r := <-results; r.err != nil {
			t.Fatal(r.err)
		}
	}
}

// checkCounter reads a retained-first subscription to the counter of
// TestRetainedFirstRacesWithRetainedPublishes until it has seen n, and
// checks that each topic's values come in order, each once, with none
// missing after the first, and that the retained ones all come first.
func checkCounter(s *rawClient, n, nTopics int) error {
	last := map[string]int{}
	live := false
	var hist []string
	for seen := 0; seen < n; {
		f, err := s.tryNext(10 * time.Second)
		if err != nil {
			return fmt.Errorf("after %d (last per topic %v): %w", seen, last, err)
		}
		if f.Op != wire.OpMsg {
			return fmt.Errorf("got %v; want MSG", f.Op)
		}
		if _, gap := f.Headers.Get(wire.DroppedHeader); gap {
			return fmt.Errorf("gap notice: the subscriber lost messages (a slow machine?)")
		}
		v, _ := strconv.Atoi(string(f.Payload))
		topic := string(f.Topic)
		retained := f.Flags&wire.MsgRetained != 0
		switch {
		case retained && live:
			return fmt.Errorf("retained value %s=%d after a live message", topic, v)
		case !retained:
			live = true
		}
		prev, ok := last[topic]
		switch {
		case !ok && !retained && v > nTopics:
			return fmt.Errorf("first of %s is live %d; a later subscriber must get the value first", topic, v)
		case ok && v != prev+nTopics:
			return fmt.Errorf("%s: %d after %d: a gap or a duplicate (%v)", topic, v, prev, hist[max(0, len(hist)-12):])
		}
		last[topic] = v
		hist = append(hist, fmt.Sprintf("%s=%d/%v", topic, v, retained))
		seen = max(seen, v)
	}
	return nil
}

// A monitor may ask for retained values first (flags 0x06); the values
// and later messages come as to any subscription.
func TestRetainedFirstMonitor(t *testing.T) {
	_, path := testBroker(t, nil)
	pub := connectRaw(t, path)
	pub.retain("m.a", "1")
	pub.sync()
	mon := connectRaw(t, path)
	mon.send(wire.AppendSub(nil, 1, "m.>", "", wire.SubMonitor|wire.SubRetained))
	mon.expectValue(1, "m.a", "1", true)
	pub.retain("m.a", "2")
	pub.sync()
	mon.expectValue(1, "m.a", "2", false)
}

// Retained values reach only subscribers the policy lets receive them,
// under the policy in force when they subscribe: a narrower policy
// installed later keeps the values it denies from new subscriptions and
// from the answer to $SYS.req.retained.
func TestRetainedValuesFollowThePolicy(t *testing.T) {
	const other = 4321
	srv, path := testBroker(t, withPolicy(t, "allow uid 4321 subscribe room.>"))
	pub := connectRaw(t, path)
	pub.retain("room.public", "p")
	pub.retain("room.secret", "s")
	pub.retain("elsewhere", "e")
	pub.sync()

	c := dialAs(t, path, other)
	c.subRetained(1, ">", 0)
	c.expectValue(1, "room.public", "p", true)
	c.expectValue(1, "room.secret", "s", true)
	c.sync()

	p := withPolicy(t, "deny uid 4321 subscribe room.secret\nallow uid 4321 subscribe room.>")
	var cfg Config
	p(&cfg)
	srv.SetPolicy(cfg.Policy)
	c.subRetained(2, "room.*", 0)
	c.expectValue(2, "room.public", "p", true)
	c.sync()

	var list wire.RetainedList
	c.request(wire.SysReqRetained, nil, &list)
	if list.Total != 1 || len(list.Retained) != 1 || list.Retained[0].Topic != "room.public" ||
		list.Retained[0].ConnID != pub.info.ConnID || list.Retained[0].Size != 1 {
		t.Fatalf("retained list %+v; want room.public alone", list)
	}
	pub.request(wire.SysReqRetained, &wire.ListRequest{Limit: 2}, &list)
	if list.Total != 3 || len(list.Retained) != 2 || !list.Truncated || list.Retained[0].Topic != "elsewhere" {
		t.Fatalf("the broker's uid's retained list %+v; want 2 of 3, sorted", list)
	}
}

// A retained-first subscription is never a duplicate: each gets its own
// snapshot, also beside a plain one of the same pattern.
func TestRetainedFirstSubsAreNotDuplicates(t *testing.T) {
	_, path := testBroker(t, nil)
	c := connectRaw(t, path)
	c.retain("d.x", "1")
	c.subRetained(1, "d.x", 0)
	c.expectValue(1, "d.x", "1", true)
	c.subRetained(2, "d.x", 0)
	c.expectValue(2, "d.x", "1", true)
	c.send(wire.AppendControl(nil, wire.OpUnsub, 1, nil))
	c.subRetained(3, "d.x", 0)
	c.expectValue(3, "d.x", "1", true)
	c.sync()
}

// A retained value larger than a read buffer (a large frame, read in
// pieces) is kept whole and delivered whole, flagged.
func TestRetainedLargeValue(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.MaxRetained = 1 << 20 })
	pub := connectRaw(t, path)
	big := strings.Repeat("0123456789abcdef", 200<<10/16)
	pub.retain("big", big)
	pub.sync()
	sub := connectRaw(t, path)
	sub.subRetained(1, "big", 0)
	sub.expectValue(1, "big", big, true)
	pub.retain("big", "small")
	sub.expectValue(1, "big", "small", false)
}

// Values that do not fit the subscriber's queue are lost to it like any
// message, and reported in a gap notice: a snapshot never takes the queue
// past its bound, and the SUB's reader never waits for room.
func TestRetainedValuesOverTheQueueAreReported(t *testing.T) {
	_, path := testBroker(t, smallQueues)
	pub := connectRaw(t, path)
	const n, size = 40, 8 << 10 // 320 KiB of values for a 64 KiB queue
	for i := range n {
		pub.retain(fmt.Sprintf("v.%02d", i), string(numbered(i, size)))
	}
	pub.sync()
	sub := connectRaw(t, path)
	sub.subRetained(1, "v.*", 0)
	// Handled without waiting for the subscriber to read: the PONG comes
	// (after the values that fit and the gap notice).
	sub.send(wire.AppendControl(nil, wire.OpPing, 99, nil))
	got, lost, pong := 0, 0, false
	for !pong || got+lost < n {
		f := sub.next()
		if f.Op == wire.OpPong {
			pong = true
			continue
		}
		if f.Op != wire.OpMsg || f.ID != 1 {
			t.Fatalf("got %v id %d; want MSG for 1", f.Op, f.ID)
		}
		if d, ok := f.Headers.Get(wire.DroppedHeader); ok {
			k, _ := strconv.Atoi(d)
			lost += k
			continue
		}
		if f.Flags&wire.MsgRetained == 0 || len(f.Payload) != size {
			t.Fatalf("got %q flags %#x, %d bytes; want a retained value", f.Topic, f.Flags, len(f.Payload))
		}
		got++
	}
	if lost == 0 || got+lost != n {
		t.Fatalf("%d values and %d reported lost; want some lost, %d in all", got, lost, n)
	}
}

// The two races of a retained-first SUB, made to happen: a retained PUB
// that looked its topic up before the SUB and stores its value after the
// snapshot is still delivered (no gap); one that stored its value before
// the snapshot and looks its topic up after the SUB is not delivered
// again (no duplicate).
func TestRetainedFirstRacesForced(t *testing.T) {
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			paused, resume := make(chan struct{}), make(chan struct{})
			first := true
			_, path := testBroker(t, func(c *Config) {
				c.hooks = &hooks{retainStep: func(s bool) {
					if s == stored && first { // only the publisher's reader calls it
						first = false
						close(paused)
						<-resume
					}
				}}
			})
			pub := connectRaw(t, path)
			pub.retain("x", "1")
			<-paused
			sub := connectRaw(t, path)
			sub.subRetained(1, "x", 0)
			if stored {
				sub.expectValue(1, "x", "1", true) // in the snapshot
			}
			sub.sync() // the SUB is in the index
			close(resume)
			pub.sync()
			if !stored {
				sub.expectValue(1, "x", "1", false) // stored after the snapshot: live
			}
			pub.retain("x", "2")
			sub.expectValue(1, "x", "2", false) // and nothing in between
		})
	}
}

// The retained bytes budget is kept as the count is: a uid whose values
// fill it is refused, naming it, and clearing a value makes room.
func TestRetainedBytesBudget(t *testing.T) {
	_, path := testBroker(t, func(c *Config) { c.User.RetainedBytes = 4 * retainCost(2, 0, 1000) })
	c := connectRaw(t, path)
	big := strings.Repeat("x", 1000)
	for i := range 4 {
		c.retain(fmt.Sprintf("b%d", i), big)
	}
	c.retain("b4", big)
	c.expectErr(wire.CodeRetainRefused, "retained bytes budget")
	c.retain("b0", "") // clears: room for one more
	c.retain("b4", big)
	c.sync()
	c.retain("b1", "small") // a smaller value of the same uid's always fits
	c.sync()
}
