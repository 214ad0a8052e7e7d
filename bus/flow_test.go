package bus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// smallQueues gives the broker 64 KiB queues, so a test reaches the limit
// with a few messages.
func smallQueues(cfg *Config) {
	cfg.MaxPending = 64 << 10
}

// numbered returns a payload of size bytes starting with i.
func numbered(i, size int) []byte {
	b := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

// publishNumbered sends n numbered messages of size bytes to topic from a
// goroutine (the broker may hold the publisher back for a moment), then a
// PING, and reports the first error once the PONG is in.
func publishNumbered(c *rawClient, topic string, n, size int) <-chan error {
	done := make(chan error, 1)
	go func() {
		var batch []byte
		for i := range n {
			batch = wire.AppendPub(batch, topic, "", nil, numbered(i, size), 0)
			if len(batch) > 256<<10 || i == n-1 {
				if _, err := c.sock.Write(batch); err != nil {
					done <- err
					return
				}
				batch = batch[:0]
			}
		}
		c.sock.Write(wire.AppendControl(nil, wire.OpPing, 7, nil))
		c.sock.SetReadDeadline(time.Now().Add(time.Minute))
		f, err := c.in.Next(nil)
		if err == nil && f.Op != wire.OpPong {
			err = errors.New("got " + f.Op.String() + ", not the PONG")
		}
		done <- err
	}()
	return done
}

// tally is what a subscriber made of a numbered stream: the messages it
// got, in order, and the losses gap notices reported.
type tally struct {
	got     []int
	lost    uint64
	notices int
	reasons []string
}

// account reads frames until got and lost add up to n, checking that the
// numbers only go up, that a notice sits where messages are missing, and
// that what a notice reports is exactly what is missing before the next
// message.
func (c *rawClient) account(n int) tally {
	c.t.Helper()
	var ta tally
	next := 0    // the number the next message should have, with nothing lost
	pending := 0 // lost as reported by notices since the last message
	for len(ta.got)+int(ta.lost) < n {
		f := c.next()
		if f.Op != wire.OpMsg {
			c.t.Fatalf("after %d messages and %d lost: got %v", len(ta.got), ta.lost, f.Op)
		}
		if f.Origin.Conn == 0 {
			k, reason := gapNotice(c.t, f)
			ta.lost += k
			ta.notices++
			ta.reasons = append(ta.reasons, reason)
			pending += int(k)
			continue
		}
		i := int(binary.BigEndian.Uint32(f.Payload))
		if i != next+pending {
			c.t.Fatalf("message %d after %d with %d reported lost in between", i, next-1, pending)
		}
		ta.got = append(ta.got, i)
		next, pending = i+1, 0
	}
	if len(ta.got)+int(ta.lost) != n {
		c.t.Fatalf("%d messages and %d reported lost; want %d in all", len(ta.got), ta.lost, n)
	}
	return ta
}

// gapNotice decodes a gap notice: how many were lost, and why.
func gapNotice(t testing.TB, f wire.Frame) (uint64, string) {
	t.Helper()
	var lost, reason string
	for k, v := range f.Headers.All() {
		switch string(k) {
		case wire.DroppedHeader:
			lost = string(v)
		case wire.ReasonHeader:
			reason = string(v)
		}
	}
	n, err := strconv.ParseUint(lost, 10, 64)
	if err != nil || n == 0 || len(f.Payload) != 0 || reason == "" {
		t.Fatalf("not a gap notice: headers %q, payload %d bytes", f.Headers, len(f.Payload))
	}
	return n, reason
}

// A subscriber that never reads costs the publisher one stall budget and
// then nothing: the publisher finishes, a reading subscriber gets every
// message, and the stopped one, once it reads, gets what fit in its queue
// and a notice for exactly what did not.
func TestStoppedSubscriberCostsThePublisherOnce(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.WriteTimeout = time.Minute // it is read late, however slow the machine
	})
	stopped := subscriber(t, path, "flood")
	reading := subscriber(t, path, "flood")
	pub := connectRaw(t, path)
	const n = 4000 // 4 MB of 1 KiB messages: far past the stopped one's socket buffer and queue
	sent := publishNumbered(pub, "flood", n, 1024)
	fast := reading.account(n)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	slow := stopped.account(n)
	if slow.lost == 0 || slow.notices == 0 {
		t.Fatalf("the stopped subscriber lost nothing: %d messages", len(slow.got))
	}
	if st := srv.Stats(); st.Lost != slow.lost+fast.lost || st.Dropped != st.Lost {
		t.Fatalf("stats: %d dropped, %d lost; subscribers were told of %d", st.Dropped, st.Lost, slow.lost+fast.lost)
	}
	stopped.sync() // and it is still connected
}

// A subscription that asked to be disconnected rather than lose messages
// is: the backlog is discarded and the ERR is the next frame after what
// the socket already held, then the connection closes.
func TestDisconnectPolicyPutsTheErrBeforeTheBacklog(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.WriteTimeout = time.Minute // the test reads late; it must still get the ERR
	})
	strict := connectRaw(t, path)
	strict.send(wire.AppendSub(nil, 1, "flood", "", wire.SubDisconnect))
	strict.sync()
	pub := connectRaw(t, path)
	const n = 4000
	if err := <-publishNumbered(pub, "flood", n, 1024); err != nil {
		t.Fatal(err)
	}
	if srv.Stats().SlowConsumers != 1 {
		t.Fatalf("stats %+v; want one slow consumer", srv.Stats())
	}
	got := 0
	for {
		f := strict.next()
		if f.Op == wire.OpErr {
			e := decodeErrFrame(t, f)
			if e.Code != wire.CodeSlowConsumer || !bytes.Contains([]byte(e.Text), []byte("queue of 65536 bytes")) {
				t.Fatalf("got %v; want slow consumer naming the queue's limit", &e)
			}
			about(t, e, 0, 0) // about the connection's output, not a frame it sent
			break
		}
		if i := int(binary.BigEndian.Uint32(f.Payload)); f.Op != wire.OpMsg || i != got {
			t.Fatalf("frame %d: %v numbered %d", got, f.Op, i)
		}
		got++
	}
	if got >= n/2 {
		t.Fatalf("%d of %d messages arrived before the ERR: the backlog was not discarded", got, n)
	}
	strict.expectClosed()
}

// A queue group member whose queue is full does not lose the group's
// messages: the next member with room takes them.
func TestQueueGroupSkipsAFullMember(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxPending = 4 << 20
		c.StallBudget = time.Second // the reading member is always waited for, however loaded the machine
	})
	full := connectRaw(t, path) // never reads until the end
	full.sub(1, "jobs", "workers")
	full.sync()
	reading := connectRaw(t, path)
	reading.sub(1, "jobs", "workers")
	reading.sync()
	pub := connectRaw(t, path)
	const n = 8000 // 8 MB: more than the full member's queue and socket buffer hold
	sent := publishNumbered(pub, "jobs", n, 1024)
	seen := map[int]int{}
	fromReading := make(chan []int, 1)
	go func() { fromReading <- reading.jobsUntilPong(t, 42) }()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	reading.send(wire.AppendControl(nil, wire.OpPing, 42, nil)) // after every job was routed
	for _, i := range <-fromReading {
		seen[i]++
	}
	full.send(wire.AppendControl(nil, wire.OpPing, 42, nil))
	took := full.jobsUntilPong(t, 42)
	for _, i := range took {
		seen[i]++
	}
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("job %d delivered %d times", i, seen[i])
		}
	}
	if len(took) == 0 || len(took) == n {
		t.Fatalf("the full member took %d of %d jobs", len(took), n)
	}
	if st := srv.Stats(); st.Dropped != 0 {
		t.Fatalf("%d jobs dropped though a member had room", st.Dropped)
	}
}

// jobsUntilPong reads numbered messages until the PONG with id, and
// returns their numbers. Gap notices fail the test.
func (c *rawClient) jobsUntilPong(t *testing.T, id uint32) []int {
	var got []int
	for {
		f, err := c.tryNext(time.Minute)
		switch {
		case err != nil:
			t.Errorf("after %d jobs: %v", len(got), err)
			return got
		case f.Op == wire.OpPong && f.ID == id:
			return got
		case f.Op != wire.OpMsg || f.Origin.Conn == 0:
			t.Errorf("after %d jobs: %v from conn %d", len(got), f.Op, f.Origin.Conn)
			return got
		}
		got = append(got, int(binary.BigEndian.Uint32(f.Payload)))
	}
}

// A request whose every responder is too far behind to take it is
// answered at once by the broker with status 429, not left to time out.
func TestRequestToFullRespondersGets429(t *testing.T) {
	_, path := testBroker(t, smallQueues)
	responder := connectRaw(t, path)
	responder.sub(1, "svc", "")
	responder.sync()
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "svc", 4000, 1024); err != nil { // fills its queue: it never reads
		t.Fatal(err)
	}
	req := connectRaw(t, path)
	req.sub(1, req.inbox(">"), "")
	// Larger than the flood's messages: whatever room the queue has left
	// was too small for one of those.
	req.send(wire.AppendPub(nil, "svc", req.inbox("1"), nil, make([]byte, 4096), 0))
	f := req.next()
	if f.Op != wire.OpMsg || f.Origin.Conn != 0 || string(f.Topic) != req.inbox("1") {
		t.Fatalf("got %v from conn %d on %q", f.Op, f.Origin.Conn, f.Topic)
	}
	if !bytes.Contains(f.Headers, []byte(wire.StatusDropped)) {
		t.Fatalf("headers %q; want status %s", f.Headers, wire.StatusDropped)
	}
}

// A connection that accepts no byte for WriteTimeout is closed as a slow
// consumer, and what was queued for it is released.
func TestWriteTimeoutClosesAStoppedReader(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	base := srv.Stats().Memory
	stopped := subscriber(t, path, "flood")
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "flood", 8000, 1024); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stopped reader to be closed", func() bool { return srv.Stats().SlowConsumers == 1 })
	for {
		f, err := stopped.tryNext(5 * time.Second)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // the ERR came too late to be written: allowed, the peer was not reading
			}
			t.Fatal(err)
		}
		if f.Op == wire.OpErr {
			if e := decodeErrFrame(t, f); e.Code != wire.CodeSlowConsumer {
				t.Fatalf("got %v", &e)
			}
			stopped.expectClosed()
			break
		}
	}
	waitFor(t, "memory to be released", func() bool { return srv.Stats().Memory <= base+2*connMemory })
}

// waitFor polls cond until it holds, failing after 10 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func decodeErrFrame(t *testing.T, f wire.Frame) wire.Error {
	t.Helper()
	var e wire.Error
	if err := wire.DecodeBody(f.Payload, &e); err != nil {
		t.Fatalf("ERR body: %v", err)
	}
	return e
}

// A publisher whose connection breaks while its reader waits for a
// receiver leaves the wait cleanly, and the broker serves on.
func TestPublisherGoneWhileWaiting(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		smallQueues(c)
		c.StallBudget = time.Second
	})
	subscriber(t, path, "flood") // never reads
	pub := connectRaw(t, path)
	sent := publishNumbered(pub, "flood", 4000, 1024)
	waitFor(t, "the publisher to wait", func() bool { return srv.Stats().Stalls > 0 })
	pub.sock.Close()
	<-sent
	waitFor(t, "the publisher to be gone", func() bool { return srv.Stats().Conns == 1 })
	stillServes(t, path)
}

// A subscriber that reads, but slowly and in small steps, is not a slow
// consumer however long its writer stays blocked: the kernel wakes a
// writer only once its peer has read three quarters of the socket's
// buffer, so the broker also counts the socket's unread bytes falling as
// the peer reading.
func TestSmallStepsAreProgress(t *testing.T) {
	// The write timeout is 30 read steps: a reader descheduled for a
	// while on a loaded machine still makes progress within it, and the
	// reads span longer than it, so a broker that did not count them would
	// cut the reader off.
	srv, path := testBroker(t, func(c *Config) { c.WriteTimeout = 1500 * time.Millisecond })
	slow := subscriber(t, path, "flood")
	pub := connectRaw(t, path)
	if err := <-publishNumbered(pub, "flood", 4000, 1024); err != nil { // fills its socket
		t.Fatal(err)
	}
	// 32 KiB every 50 ms for 2.25 s: the socket's 2 MiB buffer is never
	// three quarters read (48 reads), so no write moves, but the kernel
	// frees a buffer of the peer's (36 KiB at most) every read or two.
	buf := make([]byte, 32<<10)
	for range 45 {
		slow.sock.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(slow.sock, buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the reader's pace, not a wait for the broker
	}
	if st := srv.Stats(); st.SlowConsumers != 0 || st.Conns != 2 {
		t.Fatalf("stats %+v: a reading subscriber was cut off", st)
	}
}

// A subscriber that stops reading messages with descriptors falls behind
// by descriptors, not bytes: once lagging, it loses those messages, and
// its gap notice names the descriptor mark, not the byte one.
func TestLaggingByDescriptorsSaysSo(t *testing.T) {
	_, path := testBroker(t, nil)
	sub := subscriber(t, path, "fds")
	pub := connectRaw(t, path)
	fds := slices.Repeat([]int{pipeFD(t)}, 64)
	// 16 KiB each fills its socket's buffer (wire.SendBuffer) within some
	// 256 messages; then the broker's queue for it passes the lagging
	// bound of 2048 descriptors while it holds well under a MiB.
	payload := make([]byte, 16<<10)
	for range wire.SendBuffer/len(payload) + 100 {
		pub.send(wire.AppendPub(nil, "fds", "", nil, payload, len(fds)), fds...)
	}
	pub.sync()
	for n := 0; ; n++ {
		f, err := sub.tryNext(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		if f.NFDs > 0 {
			got, err := sub.sock.TakeFDs(int(f.NFDs))
			if err != nil {
				t.Fatal(err)
			}
			closeFDs(got)
			continue
		}
		_, reason := gapNotice(t, f)
		if !strings.Contains(reason, "descriptors behind") {
			t.Fatalf("gap notice says %q; want the descriptor mark named", reason)
		}
		return
	}
}
