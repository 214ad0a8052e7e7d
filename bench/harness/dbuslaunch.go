package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// How the two D-Bus daemons are started outside a login session: no
// systemd, no journal, nothing but a config file in a temporary directory.

// dbusDaemonCmd runs the reference daemon in the foreground on conf, which
// names the socket it listens on.
func dbusDaemonCmd(conf string) (*exec.Cmd, error) {
	bin, err := lookBin("dbus-daemon")
	if err != nil {
		return nil, err
	}
	return exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile", "--nosyslog"), nil
}

// dbusBrokerCmd runs dbus-broker as systemd would, without systemd:
//
//   - dbus-broker-launch takes its listening socket only by socket
//     activation, so systemd-socket-activate listens at path and execs the
//     launcher (on the first connection, which is the readiness probe);
//   - the launcher logs only to the journal and will not start without
//     /run/systemd/journal/socket, so it runs in a private mount namespace
//     where a directory of ours, holding a stand-in journal socket that this
//     process drains, is bind-mounted over that place;
//   - the launcher of a user bus connects to the user's session bus (to ask
//     systemd to activate services) and exits without one ("No medium
//     found"), so DBUS_SESSION_BUS_ADDRESS points it at the bus itself; no
//     service here is activatable, so it never asks.
func dbusBrokerCmd(dir, conf, path, addr string) (*exec.Cmd, error) {
	var bins [4]string
	for i, name := range []string{"sh", "systemd-socket-activate", "dbus-broker-launch", "mount"} {
		var err error
		if bins[i], err = lookBin(name); err != nil {
			return nil, err
		}
	}
	// Mount over the deepest part of the journal's path that exists here,
	// hiding as little of the host's /run as possible.
	src, target := filepath.Join(dir, "run"), "/run"
	for _, p := range []string{"systemd", "journal"} {
		if st, err := os.Stat(filepath.Join(target, p)); err != nil || !st.IsDir() {
			break
		}
		src, target = filepath.Join(src, p), filepath.Join(target, p)
	}
	journal := filepath.Join(dir, "run", "systemd", "journal")
	if err := os.MkdirAll(journal, 0o755); err != nil {
		return nil, err
	}
	if err := standInJournal(filepath.Join(journal, "socket")); err != nil {
		return nil, err
	}
	cmd := exec.Command(bins[0], "-c", `"$1" --bind "$2" "$3" && shift 3 && exec "$@"`, "sh",
		bins[3], src, target,
		bins[1], "-l", path, "-E", "DBUS_SESSION_BUS_ADDRESS="+addr,
		bins[2], "--scope=user", "--config-file="+conf)
	// Go makes the new namespace's mounts private, so the bind mount is
	// seen by the launcher and the broker only.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd, nil
}

// standInJournal listens for journal datagrams at path and drains them,
// passing errors (priority 3 or more urgent) on to stderr, so that a
// failing broker says why and a working one stays quiet.
func standInJournal(path string) error {
	os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			var prio = 6
			var msg, ident []byte
			for _, line := range bytes.Split(buf[:n], []byte("\n")) {
				switch k, v, _ := bytes.Cut(line, []byte("=")); string(k) {
				case "PRIORITY":
					prio, _ = strconv.Atoi(string(v))
				case "MESSAGE":
					msg = v
				case "SYSLOG_IDENTIFIER":
					ident = v
				}
			}
			if prio <= 3 {
				fmt.Fprintf(os.Stderr, "%s: %s\n", ident, msg)
			}
		}
	}()
	return nil
}
