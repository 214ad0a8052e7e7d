package unixsock

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockPath returns the lock file for a socket path: DIR/N.lock for
// DIR/N.sock, path+".lock" otherwise.
func lockPath(path string) string {
	if base, ok := strings.CutSuffix(path, ".sock"); ok {
		return base + ".lock"
	}
	return path + ".lock"
}

// acquireLock takes an exclusive flock(2) on the lock file at lpath, creating
// it 0600 if needed, and records our pid in it for the error a refused
// listener reports. The kernel drops the lock when the returned file is
// closed or the process dies, so the lock, not the socket file, says whether
// a server is alive. The file itself is never removed: a process that
// unlinked it could leave a competitor holding a lock on an orphaned inode
// while a third locks a new file, and both would believe they own the path.
func acquireLock(lpath string) (*os.File, error) {
	f, err := os.OpenFile(lpath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EWOULDBLOCK {
		pid := readLockPid(f)
		f.Close()
		if pid > 0 {
			return nil, fmt.Errorf("%w (pid %d holds %s)", ErrServerRunning, pid, lpath)
		}
		return nil, fmt.Errorf("%w (pid unknown, lock %s)", ErrServerRunning, lpath)
	}
	if err != nil {
		f.Close()
		return nil, os.NewSyscallError("flock", err)
	}
	if err := writeLockPid(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func writeLockPid(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readLockPid returns the pid recorded in a lock file, or 0 if there is none
// yet (the holder may not have written it) or it is not a number.
func readLockPid(f *os.File) int {
	var buf [32]byte
	n, _ := f.ReadAt(buf[:], 0)
	pid, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
