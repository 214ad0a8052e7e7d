package clientlib

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestFilesTravelToEverySubscriber(t *testing.T) {
	path, _ := startBus(t)
	base := countFDs(t)
	var subs []*Subscription
	var conns []*Conn
	for range 3 {
		c := connect(t, path)
		s, err := c.SubscribeSync("files")
		if err != nil {
			t.Fatal(err)
		}
		flush(t, c)
		subs, conns = append(subs, s), append(conns, c)
	}
	pub := connect(t, path)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.MemfdCreate("cl", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	mem := os.NewFile(uintptr(fd), "memfd")
	mem.WriteString("memfd content")
	if err := pub.Publish("files", []byte("two files"), mem, r); err != nil {
		t.Fatal(err)
	}
	mem.Close() // Publish duplicated them: closing ours is fine
	r.Close()
	w.WriteString("through the pipe")
	w.Close()
	for i, s := range subs {
		m := next(t, s)
		if len(m.Files) != 2 {
			t.Fatalf("subscriber %d got %d files", i, len(m.Files))
		}
		b := make([]byte, 64)
		n, _ := m.Files[0].ReadAt(b, 0)
		if string(b[:n]) != "memfd content" {
			t.Fatalf("subscriber %d read %q from the memfd", i, b[:n])
		}
		if i == 0 { // one pipe, shared: the first reader drains it
			all, _ := io.ReadAll(m.Files[1])
			if string(all) != "through the pipe" {
				t.Fatalf("read %q from the pipe", all)
			}
		}
		m.CloseFiles()
	}
	for _, c := range append(conns, pub) {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for countFDs(t) != base { // the broker runs in this process too
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open; want %d", countFDs(t), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSlowSubscriptionDropsAndReports(t *testing.T) {
	path, _ := startBus(t)
	reported := make(chan error, 16)
	c := connect(t, path, WithSubscriptionLimits(10, 1<<20),
		WithErrorHandler(func(_ *Conn, _ *Subscription, err error) {
			select {
			case reported <- err:
			default:
			}
		}))
	s, _ := c.SubscribeSync("many")
	flush(t, c)
	for range 100 {
		c.Publish("many", []byte("x"))
	}
	flush(t, c)
	deadline := time.Now().Add(5 * time.Second)
	for s.Dropped() != 90 {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d; want 90", s.Dropped())
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-reported; !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("reported %v", err)
	}
	for range 10 {
		next(t, s)
	}
}
