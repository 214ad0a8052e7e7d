package clientlib

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus"
)

// peerChildEnv makes the test binary, run as a child, a client of the bus
// at the socket it names: it publishes one message to "child.hello", says
// "sent", and exits when its stdin ends.
const peerChildEnv = "CLIENTLIB_TEST_PEER_CHILD"

func runPeerChild(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, WithSocket(path), WithName("child"))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Publish("child.hello", nil); err != nil {
		return err
	}
	if err := c.Flush(ctx); err != nil {
		return err
	}
	fmt.Println("sent")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// child is a process of the test binary connected to the bus, and the
// message it sent.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	msg   *Msg
}

// startChild runs a peer child on the bus at path and receives its message
// on c.
func startChild(t *testing.T, path string, c *Conn) *child {
	t.Helper()
	sub, err := c.SubscribeSync("child.hello")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^$")
	// GORACE: a race-enabled binary otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), peerChildEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "sent\n" {
		t.Fatalf("the child said %q, not sent", line)
	}
	return &child{cmd: cmd, stdin: stdin, msg: next(t, sub)}
}

// exit ends the child and waits until it has been reaped: its pid is free
// for another process from then on.
func (ch *child) exit(t *testing.T) {
	t.Helper()
	ch.stdin.Close()
	if err := ch.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// Peer tells who holds the connection a message came from, and Exe reads
// its executable through the pidfd.
func TestPeerIdentifiesTheSender(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	ch := startChild(t, path, c)
	p, err := c.Peer(testCtx(t), ch.msg.Origin.Conn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := Peer{ConnID: ch.msg.Origin.Conn, PID: ch.cmd.Process.Pid, UID: os.Getuid(), GID: os.Getgid(), Name: "child"}
	got := *p
	got.Since, got.PidFD = time.Time{}, nil
	if got != want || p.PID != ch.msg.Origin.PID {
		t.Fatalf("Peer = %+v; want %+v (origin %+v)", got, want, ch.msg.Origin)
	}
	if p.PidFD == nil {
		t.Fatal("no pidfd; this kernel (6.5+) has SO_PEERPIDFD")
	}
	if age := time.Since(p.Since); age < 0 || age > 10*time.Second {
		t.Fatalf("Since = %v, %v ago", p.Since, age)
	}
	exe, err := p.Exe()
	self, _ := os.Executable() // the child is this test binary
	if err != nil || exe != self {
		t.Fatalf("Exe() = %q, %v; want %q", exe, err, self)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Once the peer's process has exited, Verify refuses to vouch for what is
// read about its pid, whether it exited before the read or during it.
func TestPeerVerifyRefusesAnExitedProcess(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)

	ch := startChild(t, path, c)
	p, err := c.Peer(testCtx(t), ch.msg.Origin.Conn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	read := false
	err = p.Verify(func(pid int) error {
		if pid != ch.cmd.Process.Pid {
			t.Errorf("Verify read pid %d; the child is %d", pid, ch.cmd.Process.Pid)
		}
		read = true
		ch.exit(t) // the process goes while its /proc entry is being read
		return nil
	})
	if !read || !errors.Is(err, ErrPeerExited) {
		t.Fatalf("Verify with the process exiting during the read: read %v, %v; want ErrPeerExited", read, err)
	}

	// Exited and reaped before: the pid is not even looked at.
	if _, err := p.Exe(); !errors.Is(err, ErrPeerExited) {
		t.Fatalf("Exe of an exited process: %v; want ErrPeerExited", err)
	}
}

// A connection that is not open, or the broker's own id 0, is no peer.
func TestPeerOfNoConnection(t *testing.T) {
	path, srv := startBus(t)
	c := connect(t, path)
	other := connect(t, path)
	id := other.ConnID()
	other.Close()
	waitForConns(t, srv, 1)
	for _, id := range []uint64{id, 0, 1 << 40} {
		p, err := c.Peer(testCtx(t), id)
		if !errors.Is(err, ErrNoSuchConn) || !strings.HasSuffix(err.Error(), fmt.Sprintf(": %d", id)) {
			t.Fatalf("Peer(%d) = %+v, %v; want ErrNoSuchConn naming the id", id, p, err)
		}
	}
}

// waitForConns waits until the broker serves n connections.
func waitForConns(t *testing.T, srv *bus.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Conns != n {
		if time.Now().After(deadline) {
			t.Fatalf("the broker serves %d connections; want %d", srv.Stats().Conns, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A broker without room in this user's share of its descriptors for the
// answer's pidfd says so, and Peer returns ErrNoRoom.
func TestPeerNoRoom(t *testing.T) {
	path, _ := startBusWith(t, func(cfg *bus.Config) {
		cfg.MaxFDs, cfg.MaxConns, cfg.User.Conns = 2, 1, 1 // the connection's own two
	})
	c := connect(t, path)
	if p, err := c.Peer(testCtx(t), c.ConnID()); !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "descriptors") {
		t.Fatalf("Peer = %+v, %v; want ErrNoRoom naming the budget", p, err)
	}
}

// Without a pidfd there is nothing to verify with.
func TestPeerWithoutPidFDCannotVerify(t *testing.T) {
	p := &Peer{ConnID: 3, PID: os.Getpid()}
	if _, err := p.Exe(); !errors.Is(err, ErrCannotVerify) {
		t.Fatalf("Exe without a pidfd: %v; want ErrCannotVerify", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
