package unixsock

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFDsStart is SD_LISTEN_FDS_START: systemd passes sockets from fd 3 on.
const listenFDsStart = 3

// ActivationListeners returns the listening sockets systemd passed to this
// process (socket activation: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), in
// order, or nil, nil when the process was not activated (the variables are
// missing or LISTEN_PID names another process). Each listener's
// [Listener.Name] is its entry in LISTEN_FDNAMES.
//
// The sockets are used as given: Close never unlinks their paths, which
// systemd owns, and [WithMode] has no effect ([WithConnOptions] does). The
// three variables are unset in every case, so children do not take the
// sockets for theirs. Every passed descriptor must be a listening Unix stream
// socket; otherwise it returns an error naming the first one that is not, and
// leaves all the descriptors as they were.
func ActivationListeners(opts ...ListenOption) ([]*Listener, error) {
	cfg, err := newListenConfig(opts)
	if err != nil {
		return nil, wrap("activation", "", err)
	}
	connCfg, err := newConnConfig(cfg.connOpts)
	if err != nil {
		return nil, wrap("activation", "", err)
	}
	pidStr, hasPID := os.LookupEnv("LISTEN_PID")
	nStr, hasN := os.LookupEnv("LISTEN_FDS")
	names := os.Getenv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if !hasPID || !hasN {
		return nil, nil
	}
	if pid, err := strconv.Atoi(pidStr); err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 0 {
		return nil, wrap("activation", "", fmt.Errorf("bad LISTEN_FDS=%q: %w", nStr, unix.EINVAL))
	}
	if n == 0 {
		return nil, nil
	}
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		if err := checkStreamSocket(fd, true); err != nil {
			return nil, wrap("activation", "", fmt.Errorf("%s: %w", fdName(names, fd-listenFDsStart), err))
		}
	}
	ls := make([]*Listener, 0, n)
	for i := range n {
		l, err := activated(listenFDsStart+i, fdName(names, i), connCfg)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, wrap("activation", "", err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// activated wraps the inherited descriptor fd, which it closes: the listener
// works on a duplicate, and systemd keeps its own copy.
func activated(fd int, name string, cfg connConfig) (*Listener, error) {
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	nl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ln := nl.(*net.UnixListener)
	ln.SetUnlinkOnClose(false) // systemd owns the path
	bound, err := boundName(ln)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	addr, _ := ln.Addr().(*net.UnixAddr)
	if addr == nil {
		addr = &net.UnixAddr{Net: "unix"}
	}
	l := &Listener{ln: ln, path: addr.Name, name: name, addr: addr, bound: bound, connCfg: cfg}
	// Best effort, the lock beside a socket in the file system, so that
	// ProbeBus (bus ls, Watch) sees the bus as alive: systemd made the
	// socket and keeps it, but nothing else says a server is behind it.
	// Not having it (a directory we may not write, another holder) costs
	// only that.
	if addr.Name != "" && addr.Name[0] != '@' {
		if lock, err := acquireLock(lockPath(addr.Name), addr.Name); err == nil {
			l.lock = lock
		}
	}
	return l, nil
}

// fdName returns the i-th name in LISTEN_FDNAMES, or "unknown" as libsystemd
// does when there is none.
func fdName(names string, i int) string {
	if names != "" {
		if parts := strings.Split(names, ":"); i < len(parts) && parts[i] != "" {
			return parts[i]
		}
	}
	return "unknown"
}
