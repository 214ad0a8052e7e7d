package unixsock

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCrossProcessFDs passes descriptors both ways between this process and
// a re-executed child connected through Listen and Dial. Each side checks
// that the descriptor it got is open, close-on-exec and the same open file
// the sender has (same inode; a write through one moves the offset the
// other sees), and that the peer credentials are the other process's.
func TestCrossProcessFDs(t *testing.T) {
	if os.Getenv(helperEnv) == "fdpass" {
		exitHelper(fdPassChild(os.Getenv("BUSD_TEST_SOCK")))
	}
	checkFDLeaks(t)
	path := tempSockPath(t, "x.sock")
	l := listenT(t, path)
	cmd := helperCmd(t, "TestCrossProcessFDs", "fdpass", "BUSD_TEST_SOCK="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := crossProcessParent(t, l, cmd.Process.Pid)
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("child: %v\n%s", werr, out.Bytes())
	}
	if err != nil {
		t.Fatal(err)
	}
}

func crossProcessParent(t *testing.T, l *Listener, childPID int) error {
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	want := ownCred(t, childPID)
	if !sameCred(c.Peer(), want) {
		return fmt.Errorf("Peer() = %+v; want %+v", c.Peer(), want)
	}
	checkPidFD(t, c.PeerPidFD(), childPID)

	f, err := os.CreateTemp("", "")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := sendFileFD(c, int(f.Fd())); err != nil {
		return err
	}

	br := bufio.NewReader(c)
	fd, err := recvFileFD(c, br)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// The child wrote "from child" through the file we sent, and filled a
	// memfd before sending it.
	if off, _ := f.Seek(0, io.SeekCurrent); off != int64(len("from child")) {
		return fmt.Errorf("our offset is %d after the child's write; want %d", off, len("from child"))
	}
	if b, _ := os.ReadFile(f.Name()); string(b) != "from child" {
		return fmt.Errorf("file holds %q", b)
	}
	buf := make([]byte, 32)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || string(buf[:n]) != "memfd from child" {
		return fmt.Errorf("memfd holds %q, %v", buf[:n], err)
	}
	_, err = c.Write([]byte("done"))
	return err
}

func fdPassChild(path string) error {
	c, err := dialFromChild(path)
	if err != nil {
		return err
	}
	defer c.Close()
	if want := ownCred(nil, os.Getppid()); !sameCred(c.Peer(), want) {
		return fmt.Errorf("Peer() = %+v; want %+v", c.Peer(), want)
	}
	br := bufio.NewReader(c)
	fd, err := recvFileFD(c, br)
	if err != nil {
		return err
	}
	if _, err := unix.Write(fd, []byte("from child")); err != nil {
		return err
	}
	unix.Close(fd)

	m, err := unix.MemfdCreate("child", unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	if _, err := unix.Write(m, []byte("memfd from child")); err != nil {
		return err
	}
	if err := sendFileFD(c, m); err != nil {
		return err
	}
	unix.Close(m)
	done := make([]byte, 4)
	if _, err := io.ReadFull(br, done); err != nil || string(done) != "done" {
		return fmt.Errorf("got %q, %v; want done", done, err)
	}
	return nil
}

// sendFileFD sends fd in a frame whose body is the file's device and inode.
func sendFileFD(c *Conn, fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	body := binary.LittleEndian.AppendUint64(nil, st.Dev)
	body = binary.LittleEndian.AppendUint64(body, st.Ino)
	_, err := c.WriteWithFDs(appendFrame(nil, 1, body), []int{fd})
	return err
}

// recvFileFD reads a frame from sendFileFD and checks the descriptor that
// came with it: close-on-exec and the announced inode.
func recvFileFD(c *Conn, br *bufio.Reader) (int, error) {
	nfds, body, err := readFrame(br, make([]byte, 16))
	if err != nil {
		return -1, err
	}
	if nfds != 1 || len(body) != 16 {
		return -1, fmt.Errorf("frame with %d fds and %d bytes", nfds, len(body))
	}
	fds, err := c.TakeFDs(1)
	if err != nil {
		return -1, err
	}
	fd := fds[0]
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		unix.Close(fd)
		return -1, errors.New("received fd is not close-on-exec: " + strconv.Itoa(flags))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	wantDev, wantIno := binary.LittleEndian.Uint64(body), binary.LittleEndian.Uint64(body[8:])
	if st.Dev != wantDev || st.Ino != wantIno {
		unix.Close(fd)
		return -1, fmt.Errorf("received fd is %d:%d; sender had %d:%d", st.Dev, st.Ino, wantDev, wantIno)
	}
	return fd, nil
}
