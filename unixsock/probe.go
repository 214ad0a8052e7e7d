package unixsock

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// BusInfo is what the lock file beside a socket says about the server that
// holds, or last held, it. See [ProbeBus].
type BusInfo struct {
	// Socket is the socket path probed.
	Socket string
	// Lock is the lock file's path: DIR/N.lock for DIR/N.sock.
	Lock string
	// Alive reports whether a live server holds the lock. When it is
	// false, the socket file, if there is one, is stale: nobody serves it.
	Alive bool
	// PID is the pid the holder recorded: the live server's if Alive, else
	// the last server's (which may since have been reused by another
	// process). 0 if the lock file records none, as when it is missing or
	// a server is just writing it.
	PID int
	// Started is when the holder took the lock; the zero time if the file
	// records none.
	Started time.Time
	// Recorded is the socket path the holder recorded, normally Socket;
	// "" if the file records none.
	Recorded string
}

// ProbeBus reports whether a live server holds the lock file of the socket
// at socketPath, and what it recorded there (docs/PROTOCOL.md, section 1).
// It connects to nothing and needs no permission on the socket, only to
// read the lock file.
//
// It decides by trying to take a shared lock on the file without waiting:
// if it can, nobody holds the exclusive lock a live server holds for its
// whole life, and it lets go at once. The lock, not the socket file, is
// the truth: a socket left by a server that was killed stays on disk, and
// a server's lock goes with its process. A missing lock file means no
// server ever took it: BusInfo with Alive false and a nil error.
//
// A server's record may not be written yet when ProbeBus looks; Alive is
// still right, and PID and Started are then zero. Errors (the file cannot
// be opened or read, as when it belongs to another user) are *OpError.
func ProbeBus(socketPath string) (BusInfo, error) {
	info, err := probeBus(socketPath)
	return info, wrap("probe", socketPath, err)
}

func probeBus(socketPath string) (BusInfo, error) {
	info := BusInfo{Socket: socketPath, Lock: lockPath(socketPath)}
	f, err := os.OpenFile(info.Lock, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return info, nil
	}
	if err != nil {
		return info, err
	}
	defer f.Close()
	info.Alive, err = lockHeld(int(f.Fd()))
	if err != nil {
		return info, err
	}
	if rec, err := readLockRecord(f); err == nil {
		info.PID, info.Started, info.Recorded = rec.PID, rec.Started, rec.Socket
	}
	return info, nil
}

// lockHeld reports whether another open file description holds an
// exclusive flock on fd's file, by trying for a shared one without
// waiting; a shared lock it gets is released before it returns.
func lockHeld(fd int) (bool, error) {
	for {
		err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
		switch err {
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return true, nil
		case nil:
			return false, os.NewSyscallError("flock", unix.Flock(fd, unix.LOCK_UN))
		}
		return false, os.NewSyscallError("flock", err)
	}
}
