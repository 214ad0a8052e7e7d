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
	waitFDs(t, base)
}

// waitFDs waits until the process has want descriptors open: the broker
// runs in this process too, and closes its copies just after sending them.
func waitFDs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for countFDs(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open; want %d", countFDs(t), want)
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
	deadline := time.Now().Add(10 * time.Second)
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

func TestRequestAndReplyCarryFiles(t *testing.T) {
	path, _ := startBus(t)
	svc := connect(t, path)
	handled := make(chan struct{}, 1)
	// The service answers a request for a pipe with the read end of a new
	// one, after writing the request's payload into it.
	if _, err := svc.Subscribe("pipes.new", func(m *Msg) {
		defer func() { m.CloseFiles(); handled <- struct{}{} }()
		if len(m.Files) != 1 {
			m.Respond([]byte("want one file"))
			return
		}
		io.WriteString(m.Files[0], "request file seen; ")
		r, w, err := os.Pipe()
		if err != nil {
			m.Respond([]byte(err.Error()))
			return
		}
		w.Write(m.Data)
		w.Close()
		m.Respond([]byte("here"), r)
		r.Close()
	}); err != nil {
		t.Fatal(err)
	}
	flush(t, svc)
	c := connect(t, path)
	base := countFDs(t)
	reqR, reqW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := c.Request(testCtx(t), "pipes.new", []byte("payload through the reply's pipe"), reqW)
	reqW.Close()
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != "here" || len(reply.Files) != 1 {
		t.Fatalf("reply %q with %d files", reply.Data, len(reply.Files))
	}
	got, _ := io.ReadAll(reply.Files[0])
	if string(got) != "payload through the reply's pipe" {
		t.Errorf("reply's pipe gave %q", got)
	}
	seen := make([]byte, 64)
	n, _ := reqR.Read(seen)
	if string(seen[:n]) != "request file seen; " {
		t.Errorf("request's pipe gave %q", seen[:n])
	}
	reply.CloseFiles()
	reqR.Close()
	<-handled // the service has closed its copy of the request's file
	waitFDs(t, base)
}
