package unixsock

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvFlags makes the kernel install received descriptors close-on-exec
// atomically, so a concurrent fork+exec cannot inherit them. MSG_DONTWAIT
// (here and in sendFlags) makes each call non-blocking whatever the
// socket's O_NONBLOCK says: the calls below are raw system calls, which
// must never block, and O_NONBLOCK belongs to the open file description,
// which a duplicate shares. os.File.Fd on a Conn.File duplicate, as
// os/exec does for ExtraFiles, clears it for the Conn too.
const recvFlags = unix.MSG_CMSG_CLOEXEC | unix.MSG_DONTWAIT

// sendFlags turns a write to a closed peer into EPIPE instead of SIGPIPE.
const sendFlags = unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT

// maxIovecs is the kernel's UIO_MAXIOV: the most iovecs one sendmsg takes.
const maxIovecs = 1024

// sunPathLen is the size of sun_path. A path must leave room for the
// terminating NUL: the kernel would take a path that fills it, but Go's net
// package and C clients would not connect to it.
const (
	sunPathLen = len(unix.RawSockaddrUnix{}.Path)
	maxPathLen = sunPathLen - 1
)

// recvmsg, sendmsg and send call the kernel directly with a msghdr the Conn
// keeps between calls. unix.Recvmsg would ask for the sender's address
// (which the kernel fills in for stream sockets too) and allocate a
// Sockaddr for it on every read; unix.SendmsgBuffers allocates its iovec
// array per call.
//
// They are raw system calls, made without telling the scheduler: with
// MSG_DONTWAIT the call never waits (the poller does the waiting), and a
// call the scheduler is told of wakes the runtime's monitor thread whenever
// the process was idle, a futex wake-up on the critical path of every
// request that arrives at a quiet process. Measured on reqrep-16B
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

// send writes one buffer with sendto(2), which takes the flags write(2)
// does not.
func send(fd uintptr, iov unix.Iovec) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(iov.Base)), uintptr(iov.Len), sendFlags, 0, 0)
		if e != unix.EINTR {
			return int(n), e
		}
	}
}
