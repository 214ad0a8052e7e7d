package unixsock

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// TestReadOnBlockingDescriptionDoesNotStopTheWorld: Conn.File's duplicate
// shares the socket's open file description, and File.Fd (which os/exec
// calls for ExtraFiles, the documented way to hand the socket to a child)
// clears O_NONBLOCK on that description. The Conn's raw system calls still
// do not block (they pass MSG_DONTWAIT). Before the fix a raw read blocked
// while keeping its P, the GC's stop-the-world (here before the write that
// would wake the read) waited for it for ever, and the process hung.
func TestReadOnBlockingDescriptionDoesNotStopTheWorld(t *testing.T) {
	if os.Getenv(helperEnv) == "raw-blocking-read" {
		exitHelper(rawBlockingReadChild())
	}
	runRawBlockingChild(t, "TestReadOnBlockingDescriptionDoesNotStopTheWorld", "raw-blocking-read")
}

// TestWriteOnBlockingDescriptionDoesNotStopTheWorld is the same for a
// Write that fills the socket's buffer: before the fix, write(2) waited for
// the peer to read, and the peer never got to run.
func TestWriteOnBlockingDescriptionDoesNotStopTheWorld(t *testing.T) {
	if os.Getenv(helperEnv) == "raw-blocking-write" {
		exitHelper(rawBlockingWriteChild())
	}
	runRawBlockingChild(t, "TestWriteOnBlockingDescriptionDoesNotStopTheWorld", "raw-blocking-write")
}

func runRawBlockingChild(t *testing.T, test, role string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("child hung (killed after 5s): I/O on a socket made blocking by File().Fd() stopped the whole process\n%s", out)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// blockingPair returns a connected pair whose a side's open file
// description has been made blocking behind the Conn's back, as exec.Cmd
// does with ExtraFiles; the caller closes f when done.
func blockingPair() (a, b *Conn, f *os.File, err error) {
	if a, b, err = Socketpair(); err != nil {
		return nil, nil, nil, err
	}
	if f, err = a.File(); err != nil {
		return nil, nil, nil, err
	}
	f.Fd() // the shared description is now blocking
	return a, b, f, nil
}

func rawBlockingReadChild() error {
	a, b, f, err := blockingPair()
	if err != nil {
		return err
	}
	defer f.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		runtime.GC() // needs every P to stop
		b.Write([]byte("x"))
	}()
	buf := make([]byte, 1)
	if n, err := a.Read(buf); n != 1 || err != nil {
		return errors.Join(errors.New("read failed"), err)
	}
	return nil
}

func rawBlockingWriteChild() error {
	a, b, f, err := blockingPair()
	if err != nil {
		return err
	}
	defer f.Close()
	const size = 16 << 20 // far more than the socket buffers hold
	go func() {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		io.CopyN(io.Discard, b, size)
	}()
	if n, err := a.Write(make([]byte, size)); n != size || err != nil {
		return errors.Join(errors.New("write failed"), err)
	}
	return nil
}
