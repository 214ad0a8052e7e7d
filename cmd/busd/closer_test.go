package main

// The broker's own descriptors: closing what clients passed can block, and
// the process can run out of descriptors; neither may stop the broker
// (docs/SECURITY.md, "Descriptors": closed off the path, and accept).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// A passed TCP socket with SO_LINGER and a full send queue, whose last
// holder is the broker (the message carrying it queued for a subscriber
// that never reads, which then goes): closing it blocks for the linger
// time, on a closer goroutine, and meanwhile other clients are served;
// SIGTERM then stops busd within its 5 s shutdown bound, the close still
// blocked.
func TestLingeringSocketClosedByTheBroker(t *testing.T) {
	t.Parallel() // it mostly waits for a timeout: see the file comment of main_test.go
	b := start(t, bustest.Options{Args: []string{"-write-timeout", "1m"}})
	sock, ino := bustest.LingeringSocket(t, 60) // longer than anything the test waits for
	holder := b.Connect(t, "holder")            // never reads
	holder.Sub(1, "sock", "", 0)
	holder.Sync()
	pub := b.Connect(t, "publisher")
	fill(t, pub, holder, "sock")
	pub.Pub("sock", []byte("linger"), int(sock.Fd()))
	sock.Close()
	pub.Sync()
	if !holdsSocket(t, b.PID(), ino) {
		t.Fatal("the TCP socket is not among busd's descriptors: the test tests nothing")
	}
	holder.Close() // the broker drops the message, and closes the socket
	waitFor(t, "a busd thread blocked in close(2)", func() bool { return inClose(b.PID()) })
	b.serves() // while the close blocks
	if !inClose(b.PID()) {
		t.Fatal("the close did not block: this test tests nothing")
	}
	pub.Close()
	began := time.Now()
	b.Signal(t, syscall.SIGTERM)
	err := b.WaitExit(t, 15*time.Second) // the bound is 5 s; the watchdog generous
	t.Logf("busd exited %v after SIGTERM, with a close blocked for 60 s: %v", time.Since(began), err)
	if err != nil {
		t.Errorf("busd exited with %v", err)
	}
	if _, err := os.Stat(b.Socket()); !os.IsNotExist(err) {
		t.Errorf("socket still there after SIGTERM: %v", err)
	}
}

// fill publishes to topic until subscriber's socket holds all it can, so
// that the next message for it stays in the broker's queue. It stops as
// soon as the socket stops filling, with little queued behind it: a
// receiver with more than a MiB queued that does not read is lagging, and
// gets nothing more queued (docs/SECURITY.md, "Pacing").
func fill(t *testing.T, pub, subscriber *bustest.RawConn, topic string) {
	t.Helper()
	f, err := subscriber.Sock.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 0, 130<<10)
	for i := range 128 {
		chunk = wire.AppendPub(chunk, topic, "", nil, numbered(i, 1024), 0)
	}
	last, still := -1, 0
	for began := time.Now(); still < 2; {
		if time.Since(began) > watchdog {
			t.Fatalf("the subscriber's socket still takes more after %v", watchdog)
		}
		pub.Send(chunk)
		pub.Sync()
		n, err := unix.IoctlGetInt(int(f.Fd()), unix.SIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if still++; n != last {
			last, still = n, 0
		}
	}
	t.Logf("the subscriber's socket holds %d bytes", last)
}

// holdsSocket reports whether process pid has the socket with inode ino
// open.
func holdsSocket(t *testing.T, pid int, ino uint64) bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("socket:[%d]", ino)
	for _, e := range ents {
		if link, _ := os.Readlink(filepath.Join(dir, e.Name())); link == want {
			return true
		}
	}
	return false
}

// inClose reports whether a thread of process pid is in close(2): the
// kernel names the system call a blocked thread is in.
func inClose(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		sc, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err == nil && strings.HasPrefix(string(sc), fmt.Sprintf("%d ", unix.SYS_CLOSE)) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, failing the test after the watchdog.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(watchdog)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, watchdog)
		}
		time.Sleep(time.Millisecond)
	}
}

// busd run out of descriptors (its RLIMIT_NOFILE lowered, while it runs,
// to the lowest descriptor it does not use) cannot accept: it logs, backs
// off and keeps serving the connections it has, and once descriptors are
// free again it accepts the connection that waited, and never exits.
func TestAcceptWithoutDescriptors(t *testing.T) {
	// The limit is lowered below (to the next free descriptor) once busd
	// runs; started this low, its uid's budget of descriptors received at
	// once (64) is one read's worth, and start's check, whose two
	// connections may read at the same moment, could find it reserved by
	// the other's read.
	b := start(t, bustest.Options{NoFile: 4096})
	const k = 8
	held := make([]*bustest.RawConn, k)
	for i := range held {
		held[i] = b.Connect(t, fmt.Sprintf("held-%d", i))
	}
	held[0].Sub(1, "still", "", 0)
	held[0].Sync()
	soft, _ := b.FDLimit(t)
	limit := lowestFree(t, b.PID())
	b.SetFDLimit(t, uint64(limit))
	t.Logf("RLIMIT_NOFILE lowered to %d with %d descriptors open", limit, b.FDs(t))
	waiting := b.Dial(t) // the kernel completes the connection; busd cannot accept it
	body, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: "waiting"})
	waiting.Send(wire.AppendControl(nil, wire.OpHello, 0, body))
	b.WaitLog(t, "accept failed", watchdog)
	if log := b.Log(); !strings.Contains(log, "too many open files") {
		t.Errorf("busd's log does not say why accept failed:\n%s", log)
	}
	// The connections it has are served meanwhile.
	held[1].Pub("still", []byte("served"))
	if f := held[0].Next(); f.Op != wire.OpMsg || string(f.Payload) != "served" {
		t.Fatalf("a held connection got %v %q", f.Op, f.Payload)
	}
	for _, c := range held[k/2:] {
		c.Close()
	}
	if f := waiting.Next(); f.Op != wire.OpInfo {
		e, _ := bustest.DecodeErr(f)
		t.Fatalf("the waiting connection got %v (%v); want INFO", f.Op, &e)
	}
	waiting.Sync()
	waiting.Close()
	for _, c := range held[:k/2] {
		c.Close()
	}
	// The limit back as it was: with it lowered, which descriptor numbers
	// are free decides whether the normal client's descriptor can be
	// installed at all, and that is the kernel's business.
	b.SetFDLimit(t, soft)
	b.after()
}

// lowestFree returns the lowest descriptor number process pid does not
// use: the next one it opens.
func lowestFree(t *testing.T, pid int) int {
	open := fdNumbers(t, pid)
	n := 0
	for open[n] {
		n++
	}
	return n
}

// fdNumbers returns the numbers of the descriptors process pid has open.
func fdNumbers(t *testing.T, pid int) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	open := map[int]bool{}
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscan(e.Name(), &n); err == nil {
			open[n] = true
		}
	}
	return open
}
