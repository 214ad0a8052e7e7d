package unixsock

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// peerInfo reads the peer's credentials and, where the kernel supports
// SO_PEERPIDFD (Linux 6.5+), a pidfd for it. It is called once per
// connection. The pidfd is -1 when unavailable; that is not an error, because
// old kernels lack the option and a peer that has already been reaped has no
// pidfd to give.
func peerInfo(rc syscall.RawConn) (Cred, int, error) {
	var (
		cred  Cred
		pidfd = -1
		err   error
	)
	cerr := rc.Control(func(fd uintptr) {
		var uc *unix.Ucred
		uc, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			return
		}
		cred = Cred{PID: int(uc.Pid), UID: int(uc.Uid), GID: int(uc.Gid)}
		pidfd = peerPidFD(int(fd))
	})
	if cerr != nil {
		return Cred{}, -1, cerr
	}
	if err != nil {
		return Cred{}, -1, err
	}
	return cred, pidfd, nil
}

// peerPidFD returns a close-on-exec pidfd for the peer, or -1. The kernel
// creates it without O_CLOEXEC, so ForkLock keeps a concurrent fork+exec from
// inheriting it before the flag is set, as package syscall does for its own
// non-atomic close-on-exec paths.
func peerPidFD(fd int) int {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	pidfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil || pidfd < 0 {
		return -1
	}
	unix.CloseOnExec(pidfd)
	return pidfd
}
