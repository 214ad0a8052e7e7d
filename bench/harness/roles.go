package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock"
	"github.com/busd/busd/unixsock/memfd"
	"golang.org/x/sys/unix"
)

func runRole(j *job) error {
	switch j.Role {
	case "broker":
		switch j.System {
		case "busd", "busd-memfd", "busd-topic", "busd-inline", "busd-fd", "busd-payloadfile":
			return runBusdBroker(j.Addr)
		case "nats":
			return runNATSBroker()
		case "relay":
			return runRelay(j.Addr)
		case "dbus-daemon", "dbus-broker":
			return runDBusBroker(j.System, j.Addr)
		case "mosquitto":
			return runMosquittoBroker(j.Addr)
		}
	case "sub":
		return runSub(j)
	case "pub":
		return runPub(j)
	case "rep":
		return runRep(j)
	case "req":
		return runReq(j)
	case "idle":
		return runIdle(j)
	case "listen":
		return runStreamSink(j)
	case "dial":
		return runStreamSource(j)
	}
	return fmt.Errorf("no role %q for system %q", j.Role, j.System)
}

// peer connects a subscriber or responder: by dialling the broker, or for
// the direct system by listening for the publisher itself (after telling
// the parent it is ready, so the publisher can dial).
func peer(j *job) (client, error) {
	if j.System != "direct" {
		c, err := dial(j)
		if err == nil {
			err = ready(false)
		}
		return c, err
	}
	l, err := unixsock.Listen(j.Addr, unixsock.WithConnOptions(rawOpts...))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if err := ready(false); err != nil {
		return nil, err
	}
	c, err := l.Accept()
	if err != nil {
		return nil, err
	}
	r := &rawClient{conns: []*unixsock.Conn{c}, lim: wire.Limits{MaxPayload: 1 << 30, MaxHeaders: 1 << 20, MaxFDs: wire.MaxFDsPerFrame}}
	r.in = wire.NewReader(c, &r.lim)
	return r, nil
}

// runSub counts messages until j.Count have come or the publisher's end
// marker has, touching every cache line of them with j.Touch (read from
// the mapping when they come as a file), and reports how many it got. It stays connected
// until the parent stops it: a subscriber that left at j.Count would make
// the publisher's end marker, or for direct its last write, fail.
func runSub(j *job) error {
	if j.Lag != "" {
		return lag(j)
	}
	var n atomic.Int64
	finished := make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(finished) }) }
	var sink byte
	fn := func(data []byte, files []*os.File) {
		if isEndMarker(data, files) {
			finish() // whatever has not come by now was lost
			return
		}
		if j.Touch {
			sink += sum(data)
			for _, f := range files {
				sink += sumFile(f)
			}
		}
		for _, f := range files {
			f.Close()
		}
		if n.Add(1) == int64(j.Count) {
			finish()
		}
	}
	// The subscription must exist before "ready": the publisher starts then.
	if j.System != "direct" {
		c, err := dial(j)
		if err != nil {
			return err
		}
		defer c.close()
		if err := c.subscribe(pubTopic, fn); err != nil {
			return err
		}
		ready(false)
	} else {
		c, err := peer(j)
		if err != nil {
			return err
		}
		defer c.close()
		c.subscribe(pubTopic, fn)
	}
	// Neither a message nor the end marker for 30 s (and a second per
	// 8 MiB of a message: a GiB of new memory takes this VM 3-30 s to
	// fault in) means the connection died (or the publisher did): say so
	// rather than hang.
	quiet := 30*time.Second + time.Duration(j.Size/(8<<20))*time.Second
	for last := int64(-1); ; {
		select {
		case <-finished:
		case <-time.After(quiet):
			if got := n.Load(); got != last {
				last = got
				continue
			}
			return fmt.Errorf("received %d of %d messages and no end marker, none for %v", n.Load(), j.Count, quiet)
		}
		break
	}
	_ = sink
	done(report{Received: int(n.Load())})
	waitParent()
	return nil
}

// isEndMarker recognises the message a publisher sends after its last one:
// empty and without descriptors, which no scenario's messages are (the
// smallest payload is 16 B, and a memfd message carries its descriptor).
// Its own topic would be no cheaper to check, and would not stay in order
// with the messages in the client libraries that run each subscription on
// a goroutine of its own.
func isEndMarker(data []byte, files []*os.File) bool { return len(data) == 0 && len(files) == 0 }

// lag connects a subscriber that is not counted and never reads
// (lagStalled) or reads slowChunk every slowEvery (lagSlow): the broker
// must not let it hold up the others. Where a raw socket can subscribe
// (busd, nats, the relay) it is one, read by a goroutine of ours; D-Bus and
// MQTT take their client libraries, which read it themselves.
func lag(j *job) error {
	g, raw, err := dialLaggard(j)
	if err != nil {
		return err
	}
	defer g.Close()
	switch j.Lag {
	case lagStalled:
		g.stall()
	case lagSlow:
		g.slow()
	default:
		return fmt.Errorf("no laggard %q", j.Lag)
	}
	if raw {
		go discard(g)
	}
	time.Sleep(100 * time.Millisecond) // let the broker register the subscription
	ready(false)
	waitParent()
	return nil
}

// dialLaggard connects and subscribes a laggard over a gatedConn that still
// reads freely; raw says that nothing reads it yet.
func dialLaggard(j *job) (g *gatedConn, raw bool, err error) {
	switch j.System {
	case "busd", "relay":
		sock, derr := unixsock.Dial(context.Background(), j.Addr)
		if derr != nil {
			return nil, false, derr
		}
		g = newGatedConn(sock)
		if j.System == "busd" {
			body, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: "laggard"})
			b := wire.AppendControl(nil, wire.OpHello, 0, body)
			b = wire.AppendSub(b, 1, pubTopic, "", 0)
			_, err = sock.Write(b)
		}
	case "nats":
		conn, derr := net.Dial("tcp", strings.TrimPrefix(j.Addr, "nats://"))
		if derr != nil {
			return nil, false, derr
		}
		g = newGatedConn(conn)
		_, err = conn.Write([]byte("CONNECT {\"verbose\":false}\r\nSUB " + pubTopic + " 1\r\n"))
	case "dbus-daemon", "dbus-broker":
		g, err = dialGatedDBus(j.Addr)
		return g, false, err
	case "mosquitto":
		g, err = dialGatedMQTT(j.Addr)
		return g, false, err
	default:
		return nil, false, fmt.Errorf("no laggard subscriber for %s", j.System)
	}
	if err != nil {
		g.Close()
		return nil, false, err
	}
	return g, true, nil
}

// discard reads a raw laggard's socket, as its gate allows, until it is
// closed (by lag's return, when the parent stops us) or the broker drops it.
func discard(g *gatedConn) {
	buf := make([]byte, slowChunk)
	for {
		if _, err := g.Read(buf); err != nil {
			return
		}
	}
}

// sender connects a publisher or requester: to the broker, or for the
// direct system straight to every subscriber or the responder.
func sender(j *job) (client, error) {
	if j.System == "direct" {
		return dialRaw(j.Addrs...)
	}
	return dial(j)
}

func runPub(j *job) error {
	c, err := sender(j)
	if err != nil {
		return err
	}
	defer c.close()
	payload := payloadPattern(j.Size) // shared with fill: a 1 GiB payload is held once
	var files []*os.File
	var fill func()
	send := func() error { return c.publish(pubTopic, payload, files) }
	switch {
	case j.System == "busd-payloadfile":
		// A sealed memfd of the publisher's own for every message,
		// published as the payload: made with memfd.FromBytes, the
		// pwrite Publish itself uses over the threshold (and FromReader
		// uses for a file), so that the figure differs from busd's only
		// in the subscribers, which take the memfd with PayloadFiles and
		// read it through a mapping instead of into new memory of their
		// own. (Written in place into a new mapping instead, memfd.New,
		// it took 1.5 times as long here at 64 MiB: first writes to new
		// pages are the slow part; see clientlib's NewPayload.)
		b := c.(*busdClient)
		send = func() error {
			f, err := memfd.FromBytes(payload)
			if err != nil {
				return err
			}
			err = b.c.PublishMsg(&clientlib.Msg{Topic: pubTopic, PayloadFile: f})
			f.Close() // the connection has its own duplicate
			return err
		}
	case j.System == "busd-memfd":
		f, mem, err := newMemfd(j.Size)
		if err != nil {
			return err
		}
		defer f.Close()
		files, payload = []*os.File{f}, nil
		fill = func() { copy(mem, payloadPattern(j.Size)) } // produce the data where it will be read
	case j.FDs:
		f, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		defer f.Close()
		files = []*os.File{f}
	}
	if err := ready(true); err != nil {
		return err
	}
	for range j.Count {
		if fill != nil {
			fill()
		}
		if err := send(); err != nil {
			return err
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	// After the flush, so that the marker is not part of the measured
	// stream, and flushed itself, so that it leaves before we do.
	if err := c.publish(pubTopic, nil, nil); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	done(report{})
	// A subscriber that was lagging when the marker came lost it with the
	// messages before it (a broker drops what it would queue for a
	// receiver that fell too far behind, and busd's 5 ms stall budget is
	// short on a machine other work loads). Repeat the marker until the
	// parent stops us, so that such a run ends, its loss reported, rather
	// than wait out the subscriber's no-progress timeout.
	stop := make(chan struct{})
	go func() { waitParent(); close(stop) }()
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if c.publish(pubTopic, nil, nil) != nil || c.flush() != nil {
			<-stop // the peer is gone: nothing more to tell it
			return nil
		}
	}
}

// runIdle holds j.Count connections with 10 subscriptions each until the
// parent is done measuring the broker's memory.
func runIdle(j *job) error {
	var conns []client
	for i := range j.Count {
		c, err := dial(j)
		if err != nil {
			return err
		}
		for k := range 10 {
			if err := c.subscribe(fmt.Sprintf("idle.%d.%d", i, k), func([]byte, []*os.File) {}); err != nil {
				return err
			}
		}
		conns = append(conns, c)
	}
	ready(false)
	waitParent()
	for _, c := range conns {
		c.close()
	}
	return nil
}

func newMemfd(size int) (*os.File, []byte, error) {
	fd, err := unix.MemfdCreate("busbench", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "memfd"), mem, nil
}

var pattern []byte

func payloadPattern(n int) []byte {
	if len(pattern) != n {
		pattern = make([]byte, n)
		for i := range pattern {
			pattern[i] = byte(i)
		}
	}
	return pattern
}

func sum(b []byte) byte {
	var s byte
	for i := 0; i < len(b); i += 64 {
		s += b[i]
	}
	return s
}

// sumFile maps a received file and touches every page of it.
func sumFile(f *os.File) byte {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0
	}
	s := sum(mem)
	unix.Munmap(mem)
	return s
}
