package main

// Stopping and starting again: the order of the
// steps of a graceful stop, a second broker for a live bus, a broker
// killed with SIGKILL and its successor, and the lock file's record.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// On SIGTERM busd removes its socket and releases its lock before it waits
// for its connections, so that a successor can start while it flushes; a
// client it still serves gets everything queued for it before the stop,
// then ERR shutting down, then the end of the stream; and busd exits 0
// without touching the successor's socket.
func TestShutdownFlushesThenSaysGoingAway(t *testing.T) {
	t.Parallel() // it mostly waits for processes
	// A long bound: busd must wait for the subscriber however slow the
	// machine, so that what the test sees is the order, not the bound.
	old := bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-shutdown-timeout", "1m", "-write-timeout", "1m"}})
	sub := old.Subscribe(t, "sub", "t", "", 0) // does not read until the successor is up
	pub := old.Connect(t, "pub")
	// Far more than the sockets hold: the subscriber falls behind, busd
	// holds what it may for it (more than 2 MiB: pace.go's lagMark) and
	// drops the rest. It cannot be done before the subscriber reads.
	const n, size = 256, 64 << 10
	await(t, "publishing", publish(pub, "t", n, size))
	pub.Close()

	old.Signal(t, syscall.SIGTERM)
	waitFor(t, "the socket removed and the lock released", func() bool {
		info, err := unixsock.ProbeBus(old.Socket())
		_, serr := os.Lstat(old.Socket())
		return err == nil && !info.Alive && errors.Is(serr, os.ErrNotExist)
	})
	if !old.Alive() {
		t.Fatal("busd exited before its subscriber read what it queued")
	}
	// The successor starts at once on the same directory, while the
	// predecessor still holds its subscriber.
	next := bustest.StartWith(t, binDir, bustest.Options{Dir: old.Dir})
	if info, err := unixsock.ProbeBus(next.Socket()); err != nil || !info.Alive || info.PID != next.PID() {
		t.Fatalf("ProbeBus with the successor up: %+v, %v; want alive, pid %d", info, err, next.PID())
	}

	// Every message: delivered, or reported lost by a gap notice before
	// the ERR, even those lost after the last message delivered.
	ta, err := account(sub, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the subscriber got %d messages, %d reported lost in %d notices", ta.got, ta.lost, ta.notices)
	if ta.lost == 0 {
		t.Fatal("nothing was lost: busd may not have held output for the subscriber, and the test tests less than it says")
	}
	sub.ExpectErr(wire.CodeShuttingDown, "shutting down")
	sub.ExpectClosed()
	if err := old.WaitExit(t, watchdog); err != nil {
		t.Fatalf("busd exited with %v after SIGTERM; want 0", err)
	}
	old.WaitLog(t, "msg=stopped", watchdog)
	// The successor's socket is untouched, and serves.
	c := next.Connect(t, "after")
	c.Sync()
}

// Two busd started at once for one bus: exactly one serves it, and the
// other exits non-zero at once, naming the socket and the winner's pid.
func TestSecondBusdForALiveBusExits(t *testing.T) {
	t.Parallel()
	tmp, err := os.MkdirTemp("", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	dir := filepath.Join(tmp, "bus")
	type racer struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
		done   chan error
	}
	var rs [2]*racer
	for i := range rs {
		r := &racer{cmd: exec.Command(filepath.Join(binDir, "busd"), "-dir", dir), done: make(chan error, 1)}
		r.cmd.Stderr = &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { r.done <- r.cmd.Wait() }()
		t.Cleanup(func() {
			r.cmd.Process.Kill()
			<-r.done
		})
		rs[i] = r
	}
	// The loser exits by itself; the winner runs until told to stop.
	var loser, winner *racer
	select {
	case err := <-rs[0].done:
		loser, winner = rs[0], rs[1]
		rs[0].done <- err
	case err := <-rs[1].done:
		loser, winner = rs[1], rs[0]
		rs[1].done <- err
	case <-time.After(watchdog):
		t.Fatal("both busd still running: neither was refused")
	}
	err = <-loser.done
	loser.done <- err
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("the second busd exited with %v; want a non-zero status", err)
	}
	socket := filepath.Join(dir, "default.sock")
	msg := loser.stderr.String()
	if want := fmt.Sprintf("pid %d", winner.cmd.Process.Pid); !strings.Contains(msg, socket) || !strings.Contains(msg, want) {
		t.Errorf("the second busd said %q; want the socket %s and %q", msg, socket, want)
	}
	info, err := unixsock.ProbeBus(socket)
	if err != nil || !info.Alive || info.PID != winner.cmd.Process.Pid {
		t.Fatalf("ProbeBus: %+v, %v; want the winner, pid %d, alive", info, err, winner.cmd.Process.Pid)
	}
	winner.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-winner.done:
		winner.done <- err
		if err != nil {
			t.Errorf("the winner exited with %v on SIGTERM; want 0", err)
		}
	case <-time.After(watchdog):
		t.Fatal("the winner did not stop on SIGTERM")
	}
}

// A busd killed with SIGKILL leaves its socket file and its lock file;
// the lock is free, so the next busd for the bus replaces the stale socket
// and serves, and the lock file then records the new broker.
func TestBusdAfterKillReplacesStaleSocket(t *testing.T) {
	t.Parallel()
	dead := bustest.StartWith(t, binDir, bustest.Options{})
	dead.Connect(t, "before").Sync()
	dead.Signal(t, syscall.SIGKILL)
	if err := dead.WaitExit(t, watchdog); err == nil {
		t.Fatal("busd exited 0 on SIGKILL")
	}
	if fi, err := os.Lstat(dead.Socket()); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("after SIGKILL the socket file is %v, %v; want it left behind: the test tests nothing", fi, err)
	}
	if _, err := bustest.DialRaw(dead.Socket()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialling the stale socket: %v; want ECONNREFUSED", err)
	}
	info, err := unixsock.ProbeBus(dead.Socket())
	if err != nil || info.Alive || info.PID != dead.PID() {
		t.Fatalf("ProbeBus after SIGKILL: %+v, %v; want stale, last pid %d", info, err, dead.PID())
	}
	next := bustest.StartWith(t, binDir, bustest.Options{Dir: dead.Dir})
	next.Connect(t, "after").Sync()
	info, err = unixsock.ProbeBus(next.Socket())
	if err != nil || !info.Alive || info.PID != next.PID() || info.Recorded != next.Socket() || info.Started.IsZero() {
		t.Fatalf("ProbeBus after the restart: %+v, %v; want alive, pid %d, socket %s, a start time", info, err, next.PID(), next.Socket())
	}
}
