package activation

import (
	"errors"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openPidfd returns a pidfd of the process pid, a child not yet waited
// for, that the runtime's poller watches: it becomes readable when the
// process ends.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK) // always close-on-exec
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), nil
}

// waitPidfd waits until the process of f has ended, without reaping it
// (exec.Cmd.Wait does); it returns an error if f is closed meanwhile.
func waitPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			perr = os.NewSyscallError("poll", err)
			return true
		}
		return n > 0
	})
	if err != nil {
		return err
	}
	return perr
}

// markCloseOnExec sets close-on-exec on every descriptor from 3 on, so
// that a process started next inherits none of busd's: Go opens its own
// so, but busd may have been given some that are not (by its parent, or
// by a library). It is harmless to busd, which starts no process that
// should inherit one.
func markCloseOnExec() {
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	ents, err := os.ReadDir("/proc/self/fd") // before Linux 5.11
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}
