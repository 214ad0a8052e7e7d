package clientlib

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Verify lets read look at the peer's process through /proc while making
// sure that what it read was about that process, not about another one
// that has since been given its pid. It:
//
//  1. finds the process's pid from its pidfd (the Pid line of
//     /proc/self/fdinfo/FD): the pid as this process's /proc names it,
//     which is Peer.PID unless the broker runs in another pid namespace;
//  2. calls read with that pid, so read can open /proc/PID/exe, status,
//     cgroup, attr/current, or signal it;
//  3. checks that the pidfd still refers to a live process: a pid is not
//     given to another process while its process lives (or is a zombie
//     nobody has reaped), so everything read in step 2 was the peer's.
//
// It returns read's error if it fails while the process lives, an error
// matching ErrPeerExited if the process had exited by step 1 or 3 (discard
// what read found then), and one matching ErrCannotVerify if the Peer has
// no pidfd or the process is in a pid namespace this process cannot see.
//
// What read finds is the process as it is now: a process may have called
// execve(2) since it connected (the pidfd and the pid stay the same), and
// the credentials in Peer are those it connected with. read runs while
// Verify holds the pidfd open: it must not close the Peer.
func (p *Peer) Verify(read func(pid int) error) error {
	if p.PidFD == nil {
		return fmt.Errorf("%w: the broker holds no pidfd for connection %d (Linux before 6.5?)", ErrCannotVerify, p.ConnID)
	}
	rc, err := p.PidFD.SyscallConn()
	if err != nil {
		return fmt.Errorf("bus: verifying connection %d's process: %w", p.ConnID, err)
	}
	var readErr error
	// Inside Control the descriptor number stays the pidfd's: a
	// concurrent Close waits for it.
	cerr := rc.Control(func(fd uintptr) {
		var pid int
		if pid, err = pidfdPID(int(fd)); err != nil {
			return
		}
		switch pid {
		case -1:
			err = p.exited()
			return
		case 0:
			err = fmt.Errorf("%w: connection %d's process is in a pid namespace this process cannot see", ErrCannotVerify, p.ConnID)
			return
		}
		readErr = read(pid)
		var exited bool
		if exited, err = pidfdExited(int(fd)); err == nil && exited {
			err = p.exited()
		}
	})
	switch {
	case cerr != nil:
		err = cerr
	case err == nil:
		return readErr
	}
	if errors.Is(err, ErrPeerExited) || errors.Is(err, ErrCannotVerify) {
		return err
	}
	return fmt.Errorf("bus: verifying connection %d's process: %w", p.ConnID, err)
}

func (p *Peer) exited() error {
	return fmt.Errorf("%w (connection %d, pid %d)", ErrPeerExited, p.ConnID, p.PID)
}

// Exe returns the path of the executable the peer's process runs, read
// from /proc/PID/exe and verified (see Verify) to be the peer's and not a
// recycled pid's. It is what the process runs now: see Verify.
func (p *Peer) Exe() (string, error) {
	var exe string
	err := p.Verify(func(pid int) error {
		var err error
		exe, err = os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		return err
	})
	if err != nil {
		return "", err
	}
	return exe, nil
}

// pidfdPID returns the pid of the process pidfd refers to, in the pid
// namespace of this process's /proc: -1 once the process has been reaped,
// 0 if it is not in that namespace. (The fdinfo Pid line has said so since
// Linux 5.3.)
func pidfdPID(pidfd int) (int, error) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Pid:")); ok {
			pid, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, fmt.Errorf("fdinfo of the pidfd: Pid %q: %w", v, err)
			}
			return pid, nil
		}
	}
	return 0, errors.New("fdinfo of the pidfd has no Pid line: not a pidfd")
}

// pidfdExited reports whether the process pidfd refers to has exited: a
// pidfd polls readable from then on.
func pidfdExited(pidfd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		return n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0, nil
	}
}
