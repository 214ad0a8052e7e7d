package main

// The edges of `bus stream`: interrupts and peers that leave while stdin
// stays open and idle.

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/clientlib"
)

// startListener starts `bus stream listen NAME` with a stdin that stays
// open and idle (a terminal nobody types into), and dials it from the test.
func startListener(t *testing.T, b *busd, name string) (*exec.Cmd, io.WriteCloser, *syncBuffer, *clientlib.StreamConn) {
	t.Helper()
	cmd := b.bus("stream", "listen", name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := new(syncBuffer)
	cmd.Stdout = out
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	bustest.WaitLine(t, stderr, "bus: listening for a stream")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := connectTo(t, b).DialStream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return cmd, stdin, out, sc
}

// exitWait is how long a bus command is given to exit once it should: a
// watchdog against one that never does, however slow the machine.
const exitWait = 10 * time.Second

// waitOutput waits until out holds want, failing the test if it does not
// within exitWait.
func waitOutput(t *testing.T, out *syncBuffer, want, what string) {
	t.Helper()
	deadline := time.Now().Add(exitWait)
	for out.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s printed %q; want %q", what, out.String(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExit waits up to d for cmd to exit and returns how it exited.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, what string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s: bus stream still running after %v", what, d)
		return nil
	}
}

// Ctrl-C ends `bus stream listen` even while stdin is idle. Before the fix
// pipe closed the stream when ctx ended, then waited for its stdin
// goroutine, which was blocked reading stdin.
func TestCLIStreamInterruptWithIdleStdin(t *testing.T) {
	b := startBusd(t)
	cmd, _, out, sc := startListener(t, b, "idle")
	io.WriteString(sc, "hello\n")
	waitOutput(t, out, "hello\n", "the listener") // it is piping
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, exitWait, "after SIGINT"); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
}

// When the other end closes the stream (stops reading and writing), pipe
// is done even with an idle stdin, as the package doc says ("stdin has ended
// (or the other end stopped reading)"). Before the fix it waited for stdin
// for ever.
func TestCLIStreamPeerClosesWithIdleStdin(t *testing.T) {
	b := startBusd(t)
	cmd, _, out, sc := startListener(t, b, "early")
	io.WriteString(sc, "bye\n")
	sc.Close()
	if err := waitExit(t, cmd, exitWait, "after the peer closed"); err != nil {
		t.Fatalf("exit after the peer closed: %v", err)
	}
	if got := out.String(); got != "bye\n" {
		t.Errorf("printed %q", got)
	}
}

// The other end closes early and stdin then has more to send: the write's
// EPIPE is a normal end ("the other end stopped reading"), and bus stream
// exits 0. Before the fix it exited 1.
func TestCLIStreamPeerClosesThenStdinWrites(t *testing.T) {
	b := startBusd(t)
	cmd, stdin, _, sc := startListener(t, b, "epipe")
	sc.Close()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(stdin, "more input\n")
	io.WriteString(stdin, "and more\n")
	if err := waitExit(t, cmd, exitWait, "after the peer closed and stdin wrote"); err != nil {
		t.Fatalf("exit: %v; want a clean end (the other end stopped reading)", err)
	}
}

// Ctrl-C ends `bus stream write` while stdin is idle. Before the fix
// streamWrite ignored ctx and copied stdin until it ended; as the signal
// is caught (NotifyContext), a second Ctrl-C did not help either.
func TestCLIStreamWriteInterruptWithIdleStdin(t *testing.T) {
	b := startBusd(t)
	cmd := b.bus("stream", "write", "logs.idle")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	io.WriteString(stdin, "one line\n")
	time.Sleep(300 * time.Millisecond) // connected and copying
	cmd.Process.Signal(os.Interrupt)
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	waitExit(t, cmd, exitWait, "after two SIGINTs")
}
