package clientlib

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// impostorEnv makes the test binary, run as a child, a broker's stand-in
// that listens as another user (impostorUID) at the path it names.
const (
	impostorEnv = "CLIENTLIB_TEST_IMPOSTOR"
	impostorUID = 4242
)

func TestMain(m *testing.M) {
	if path := os.Getenv(impostorEnv); path != "" {
		if err := runImpostor(path); err != nil {
			fmt.Fprintln(os.Stderr, "impostor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if path := os.Getenv(lockHolderEnv); path != "" {
		if err := runLockHolder(path); err != nil {
			fmt.Fprintln(os.Stderr, "lock holder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if path := os.Getenv(peerChildEnv); path != "" {
		if err := runPeerChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "peer child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// runImpostor binds a socket at path as root, becomes impostorUID, listens
// (the kernel records the listener's credentials then), says "ready", and
// prints how many bytes the one client it accepts sent before hanging up.
func runImpostor(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return err
	}
	if err := syscall.Setgid(impostorUID); err != nil {
		return err
	}
	if err := syscall.Setuid(impostorUID); err != nil {
		return err
	}
	if err := unix.Listen(fd, 1); err != nil {
		return err
	}
	fmt.Println("ready")
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		return err
	}
	conn := os.NewFile(uintptr(nfd), "client")
	defer conn.Close()
	n, err := io.Copy(io.Discard, conn)
	fmt.Println(n)
	return err
}

// A broker run by a user the client does not trust is refused before the
// client sends it a byte, by the uid the kernel recorded when it listened.
func TestConnectRefusesABrokerRunByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		// setuid needs root, and no other way gives a listener a uid the
		// kernel reports differently (CI runs as root, so it runs there;
		// TestBrokerOfAnUntrustedUser checks the same rule without it).
		t.Skip("only root can start the broker's stand-in as another user")
	}
	path := filepath.Join(t.TempDir(), "t.sock") // ours, 0700: a trusted directory
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), impostorEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("the impostor said %q, not ready", lines.Text())
	}
	_, err = Connect(testCtx(t), WithSocket(path))
	if !errors.Is(err, ErrUntrustedBus) || !strings.Contains(err.Error(), fmt.Sprintf("runs as uid %d", impostorUID)) {
		t.Fatalf("Connect to a broker run by uid %d = %v; want ErrUntrustedBus naming the uid", impostorUID, err)
	}
	if !lines.Scan() || lines.Text() != "0" {
		t.Fatalf("the impostor received %q bytes; want 0", lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("impostor: %v", err)
	}
}
