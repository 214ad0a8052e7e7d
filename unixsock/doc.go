// Package unixsock is the socket layer busd's broker and clients stand on:
// Unix-domain stream sockets that carry file descriptors, and nothing else.
// It knows no frames and no topics.
//
// # Listening
//
// [Listen] publishes a socket at a path so that a client never sees a socket
// that is not yet accepting or that has the wrong permissions: the socket is
// bound under a temporary name in the same directory, given its mode (and,
// with [WithGroup], its group), put into the listening state and only then
// renamed over the final path. Whether a
// server is alive is decided by an exclusive flock(2) on a lock file beside the
// socket (DIR/N.lock for DIR/N.sock), never by the socket file itself, so a
// socket left behind by a crash is replaced and a second server is refused at
// once with [ErrServerRunning]. The holder writes its pid, the time it took
// the lock and the socket path into the lock file, as one line of JSON;
// [ProbeBus] reads it back and tells a live server from a stale file by
// trying for a shared lock, without connecting. [ActivationListeners] takes
// listeners from systemd socket activation instead.
//
// # File descriptors on a stream
//
// On a stream socket the kernel attaches the descriptors of one sendmsg(2) to
// the first byte that call sent, and hands them to whichever recvmsg(2) reads
// that byte. Reads may split a frame or coalesce several, so descriptors cannot
// be matched to frames by read boundaries. A [Conn] therefore appends every
// descriptor it receives to a per-connection FIFO; the protocol above puts the
// descriptor count in each frame header and, once it has parsed a frame, takes
// that many with [Conn.TakeFDs]. Because descriptors always arrive no later
// than the first byte of the frame they belong to, and in send order, each
// frame gets exactly its own descriptors however the bytes were cut.
//
// A read whose control data was truncated (MSG_CTRUNC: the sender attached
// more descriptors than the receiver's limit, see [WithMaxRecvFDs], or than
// its [FDBudget] granted, or the receiver ran out of descriptors) closes
// every descriptor of that read and fails with [ErrFDsTruncated]; the
// connection is then unusable because the FIFO no longer matches the frames.
//
// Every descriptor the layer received and nobody took is closed by
// [Conn.Close] (or handed to the function set by [Conn.SetFDCloser]).
// Descriptors handed out by TakeFDs belong to the caller.
//
// # Descriptor budgets
//
// A process that receives descriptors from many peers can be driven to its
// RLIMIT_NOFILE by what they send, after which its own accept(2) and
// open(2) fail. The kernel installs a passed descriptor only if the read's
// control buffer has room for it, so [Conn.SetFDBudget] bounds what a Conn
// can receive: before every recvmsg the Conn asks its [FDBudget] how many
// descriptors the read may install, offers the kernel room for exactly that
// many and gives back what the read did not use. Installed descriptors stay
// charged until the Conn closes them, or until TakeFDs passes them, and
// their charge, to the caller. A read cut short by the budget fails with an
// error matching both [ErrFDsTruncated] and [ErrFDBudget].
//
// close(2) of a received descriptor can block (a TCP socket with SO_LINGER
// and unsent data waits for the linger time). [Conn.SetFDCloser] makes the
// Conn hand the descriptors it gives up, and their charge, to a function
// instead of closing them on the goroutine that reads or closes.
//
// # Reference cycles
//
// A connection's own socket, or the listener's, passed through a broker
// that holds it until delivery keeps the connection alive for as long as the
// broker holds it, for ever if its owner exits (dbus CVE-2014-3637).
// [Listener.Owns] recognises such descriptors so that the broker can refuse
// them.
//
// # Credentials
//
// The peer's pid, uid and gid (SO_PEERCRED), its supplementary groups
// (SO_PEERGROUPS, Linux 4.13 and later) and a pidfd for the peer process
// (SO_PEERPIDFD, Linux 6.5 and later) are read once when a connection is made.
// They describe the process that called connect(2) (for an accepted Conn) or
// listen(2) (for a dialled Conn) and are not updated if the socket is later
// passed to another process. Compare ids numerically; use the pidfd, not the
// pid, to refer to the peer process later, since pids are reused.
// [Conn.DupPeerPidFD] gives a duplicate of it to keep or pass on, safely
// even while another goroutine closes the Conn.
//
// # Platform
//
// The package targets Linux: it relies on SO_PEERCRED, SO_PEERGROUPS,
// SO_PEERPIDFD, MSG_CMSG_CLOEXEC and the 108-byte sun_path.
package unixsock
