package unixsock

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerInfo reads the peer's credentials, its supplementary groups and,
// where the kernel supports SO_PEERPIDFD (Linux 6.5+), a pidfd for it. It is
// called once per connection. The pidfd is -1 when unavailable; that is not an error, because
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
		if cred.Groups, err = peerGroups(int(fd)); err != nil {
			return
		}
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

// peerGroupsStart is how many groups the first SO_PEERGROUPS read has room
// for: most processes have a handful, and a peer with more costs one more
// system call.
const peerGroupsStart = 32

// peerGroups returns the supplementary groups the kernel recorded for the
// peer with its other credentials (SO_PEERGROUPS, Linux 4.13+), as this
// process's user namespace sees them, or nil if there are none. A kernel
// without the option also gives nil: the caller then knows the primary gid
// only, which makes a gid rule admit fewer peers, never more.
//
// x/sys/unix has no wrapper for it. The kernel answers a buffer too small
// with ERANGE and the size it needs; the groups were fixed when the peer
// connected, so the second call fits.
func peerGroups(fd int) ([]uint32, error) {
	var first [peerGroupsStart]uint32
	buf := first[:]
	for {
		size := uint32(4 * len(buf)) // a socklen_t
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case e == 0 && size == 0:
			return nil, nil
		case e == 0:
			return slices.Clone(buf[:size/4]), nil
		case e == unix.ERANGE && int(size) > 4*len(buf):
			buf = make([]uint32, (size+3)/4)
		case e == unix.ENOPROTOOPT:
			return nil, nil
		case e == unix.ERANGE:
			return nil, fmt.Errorf("getsockopt SO_PEERGROUPS: ERANGE for %d bytes, asking for %d", 4*len(buf), size)
		default:
			return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", e)
		}
	}
}
