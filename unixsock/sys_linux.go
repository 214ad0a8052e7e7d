package unixsock

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvFlags makes the kernel install received descriptors close-on-exec
// atomically, so a concurrent fork+exec cannot inherit them.
const recvFlags = unix.MSG_CMSG_CLOEXEC

// sendFlags turns a write to a closed peer into EPIPE instead of SIGPIPE.
const sendFlags = unix.MSG_NOSIGNAL

// maxIovecs is the kernel's UIO_MAXIOV: the most iovecs one sendmsg takes.
const maxIovecs = 1024

// sunPathLen is the size of sun_path. A path must leave room for the
// terminating NUL: the kernel would take a path that fills it, but Go's net
// package and C clients would not connect to it.
const (
	sunPathLen = len(unix.RawSockaddrUnix{}.Path)
	maxPathLen = sunPathLen - 1
)

// recvmsg, sendmsg and writev call the kernel directly with a msghdr the Conn keeps
// between calls. unix.Recvmsg would ask for the sender's address (which the
// kernel fills in for stream sockets too) and allocate a Sockaddr for it on
// every read; unix.SendmsgBuffers allocates its iovec array per call.
//
// They are raw system calls, made without telling the scheduler: the socket
// is non-blocking, so the call never waits (the poller does the waiting),
// and a call the scheduler is told of wakes the runtime's monitor thread
// whenever the process was idle, a futex wake-up on the critical path of
// every request that arrives at a quiet process. Measured on reqrep-16B
// (busbench, alternating builds): p50 124 -> 105-114 us.

func recvmsg(fd uintptr, msg *unix.Msghdr) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(msg)), recvFlags)
		if e != unix.EINTR {
			return int(n), e
		}
	}
}

func sendmsg(fd uintptr, msg *unix.Msghdr) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(msg)), sendFlags)
		if e != unix.EINTR {
			return int(n), e
		}
	}
}

// writev writes iov, or with a single buffer uses write(2), which skips
// importing the iovec. The runtime ignores the SIGPIPE a write to a closed
// socket raises on descriptors other than stdout and stderr, so it fails with
// EPIPE like sendmsg with MSG_NOSIGNAL.
func writev(fd uintptr, iov []unix.Iovec) (int, syscall.Errno) {
	for {
		var n uintptr
		var e syscall.Errno
		if len(iov) == 1 {
			n, _, e = unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
		} else {
			n, _, e = unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		}
		if e != unix.EINTR {
			return int(n), e
		}
	}
}
