package bus

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// memfdWith returns a memfd holding content.
func memfdWith(t *testing.T, content string) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("bus-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f
}

// readFD reads a received descriptor's file from its start and closes it.
func readFD(t *testing.T, fd int) string {
	t.Helper()
	f := os.NewFile(uintptr(fd), "received")
	defer f.Close()
	b := make([]byte, 256)
	n, err := f.ReadAt(b, 0)
	if n == 0 {
		t.Fatalf("reading received fd: %v", err)
	}
	return string(b[:n])
}

func TestDescriptorReachesEverySubscriber(t *testing.T) {
	_, path := testBroker(t, nil)
	base := countFDs(t)
	var subs []*rawClient
	for i := range 3 {
		s := connectRaw(t, path)
		s.sub(uint32(i+1), "files.>", "")
		s.sync()
		subs = append(subs, s)
	}
	pub := connectRaw(t, path)
	file := memfdWith(t, "shared through the bus")
	pub.pub("files.new", "one file", int(file.Fd()))
	file.Close() // the broker holds its own copy until every subscriber has one
	for i, s := range subs {
		f := s.next()
		if f.Op != wire.OpMsg || f.NFDs != 1 {
			t.Fatalf("subscriber %d got %v with %d fds", i, f.Op, f.NFDs)
		}
		fds, err := s.sock.TakeFDs(1)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFD(t, fds[0]); got != "shared through the bus" {
			t.Fatalf("subscriber %d read %q", i, got)
		}
	}
	for _, c := range append(subs, pub) {
		c.sock.Close()
	}
	waitFDs(t, base)
}

func TestManyFramesWithDescriptorsKeepTheirOwn(t *testing.T) {
	_, path := testBroker(t, nil)
	base := countFDs(t)
	sub := subscriber(t, path, "f")
	pub := connectRaw(t, path)
	const n = 300
	var files []*os.File
	for i := range n {
		if i%3 == 0 { // every third message carries two files, the rest none
			a, b := memfdWith(t, fmt.Sprint("a", i)), memfdWith(t, fmt.Sprint("b", i))
			pub.pub("f", fmt.Sprint(i), int(a.Fd()), int(b.Fd()))
			files = append(files, a, b)
		} else {
			pub.pub("f", fmt.Sprint(i))
		}
	}
	for _, f := range files {
		f.Close()
	}
	for i := range n {
		f := sub.next()
		if string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d has payload %q", i, f.Payload)
		}
		if i%3 != 0 {
			if f.NFDs != 0 {
				t.Fatalf("message %d has %d fds; want none", i, f.NFDs)
			}
			continue
		}
		fds, err := sub.sock.TakeFDs(int(f.NFDs))
		if err != nil || len(fds) != 2 {
			t.Fatalf("message %d: %d fds, %v", i, f.NFDs, err)
		}
		if a, b := readFD(t, fds[0]), readFD(t, fds[1]); a != fmt.Sprint("a", i) || b != fmt.Sprint("b", i) {
			t.Fatalf("message %d carried %q and %q", i, a, b)
		}
	}
	sub.sock.Close()
	pub.sock.Close()
	waitFDs(t, base)
}

// A subscriber that disconnects with descriptors still queued for it costs
// the others nothing and leaks nothing.
func TestSubscriberVanishesWithDescriptorsPending(t *testing.T) {
	_, path := testBroker(t, nil)
	base := countFDs(t)
	gone := subscriber(t, path, "f")
	stays := subscriber(t, path, "f")
	pub := connectRaw(t, path)
	const n = 50
	for i := range n {
		file := memfdWith(t, fmt.Sprint(i))
		pub.pub("f", fmt.Sprint(i), int(file.Fd()))
		file.Close()
		if i == n/2 {
			gone.sock.Close() // never read a thing
		}
	}
	for i := range n {
		f := stays.next()
		fds, err := stays.sock.TakeFDs(int(f.NFDs))
		if err != nil || len(fds) != 1 {
			t.Fatalf("message %d: %v", i, err)
		}
		if got := readFD(t, fds[0]); got != fmt.Sprint(i) {
			t.Fatalf("message %d carried %q", i, got)
		}
	}
	stays.sock.Close()
	pub.sock.Close()
	waitFDs(t, base)
}

// A subscriber that stopped reading, fed messages of 64 descriptors each,
// holds once it is lagging no more than half its descriptor limit (and
// one message's worth): not the whole limit, which a few such
// subscribers would make their user's whole share of the broker's
// descriptors. What did not fit is lost to it, and counted.
func TestLaggingSubscriberHoldsHalfItsDescriptorLimit(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) { c.WriteTimeout = time.Minute })
	base := srv.Stats().FDs
	stopped := subscriber(t, path, "fds")
	pub := connectRaw(t, path)
	file := memfdWith(t, "x")
	defer file.Close()
	fds := make([]int, 64)
	for i := range fds {
		fds[i] = int(file.Fd())
	}
	// 16 KiB each, so that its socket's buffer fills with a few, and
	// queued, 2048 descriptors are far less than lagMark's bytes.
	const n = 200 // 12800 descriptors: three times MaxPendingFDs
	for i := range n {
		pub.send(wire.AppendPub(nil, "fds", "", nil, numbered(i, 16<<10), len(fds)), fds...)
	}
	pub.sync()
	conns := int64(2 * fdsPerConn)
	most := int64(srv.cfg.MaxPendingFDs/2 + len(fds))
	waitFor(t, "the dropped descriptors to be closed", func() bool { return srv.Stats().FDs <= base+conns+most })
	st := srv.Stats()
	if st.Lagging == 0 || st.Dropped == 0 {
		t.Fatalf("the stopped subscriber lagged %d times and lost %d messages; want both", st.Lagging, st.Dropped)
	}
	t.Logf("the broker holds %d descriptors for the stopped subscriber", st.FDs-base-conns)
	stopped.sock.Close()
	pub.sock.Close()
	waitFor(t, "every descriptor to be given back", func() bool { return srv.Stats().FDs == base })
}

// A descriptor a client passes stays in its user's share of the broker's
// descriptors until it is closed, and a read that brings more than the
// share has room for ends the connection. So a publisher whose passed
// descriptors fill its share is paced until there is room for a read's
// worth, not refused: here another connection of the same user holds 253
// that no frame claims, and the publisher's second message, 253 more, is
// read once they are gone.
func TestDescriptorSenderWaitsForRoomInItsShare(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDs, c.User.InputFDs = 1000, 1000 // alone, a user may hold 500
		c.MaxConns, c.User.Conns = 16, 16
		c.Limits.MaxFDs = wire.MaxFDsPerFrame
	})
	holder := connectRaw(t, path)
	pub := connectRaw(t, path)
	file := memfdWith(t, "x")
	defer file.Close()
	fds := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = int(file.Fd())
		}
		return s
	}
	holder.send(wire.AppendControl(nil, wire.OpPing, 1, nil), fds(253)...) // a PING claims none
	if f := holder.next(); f.Op != wire.OpPong {
		t.Fatalf("got %v; want the PONG", f.Op)
	}
	pub.send(wire.AppendPub(nil, "t", "", nil, []byte("first"), 200), fds(200)...)
	pub.send(wire.AppendPub(nil, "t", "", nil, []byte("second"), 253), fds(253)...)
	waitFor(t, "the publisher to wait for room", func() bool { return srv.Stats().FDWaits > 0 })
	holder.sock.Close()
	pub.sync() // the PONG, and no ERR before it
	if st := srv.Stats(); st.Published != 2 {
		t.Fatalf("%d messages published; want 2", st.Published)
	}
	waitFor(t, "every passed descriptor to be closed", func() bool { return srv.Stats().FDs == fdsPerConn })
}
