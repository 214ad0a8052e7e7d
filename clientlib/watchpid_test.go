package clientlib

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/busd/busd/unixsock"
)

// lockHolderEnv, set to a socket path, makes the test binary a stand-in
// broker: it listens there (taking the lock beside it), says "ready", and
// waits to be killed.
const lockHolderEnv = "CLIENTLIB_TEST_LOCK_HOLDER"

func runLockHolder(path string) error {
	l, err := unixsock.Listen(path)
	if err != nil {
		return err
	}
	defer l.Close()
	os.Stdout.WriteString("ready\n")
	bufio.NewReader(os.Stdin).ReadString('\n') // until killed, or stdin ends
	return nil
}

// A broker killed with SIGKILL leaves its socket behind and its lock
// released, which inotify does not report: Watch learns of it through the
// broker's pidfd, reports the bus down, and up again when a new broker
// takes the name.
func TestWatchSeesABrokerKilled(t *testing.T) {
	dir := filepath.Join(tempBusDir(t), "w")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := SocketPath(dir, "k")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+path)
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the stand-in broker said %q", line)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := Watch(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	expectEvent(t, events, BusEvent{Name: "k", Socket: path, Up: true})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the killed broker's socket is gone (%v): the test shows nothing", err)
	}
	expectEvent(t, events, BusEvent{Name: "k", Socket: path, Up: false})
	serveAt(t, path) // a successor replaces the stale socket
	expectEvent(t, events, BusEvent{Name: "k", Socket: path, Up: true})
	cancel()
	drainClosed(t, events)
}
