package bus

import (
	"fmt"
	"os"
	"testing"

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
