package clientlib

import (
	"os"
	"path/filepath"
	"strconv"
)

// DefaultBus is the name of the bus a client connects to unless told
// otherwise.
const DefaultBus = "default"

// Dir returns the directory where buses of this user listen: $BUSD_DIR,
// else $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID.
func Dir() string {
	if d := os.Getenv("BUSD_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "busd")
	}
	return filepath.Join(os.TempDir(), "busd-"+strconv.Itoa(os.Getuid()))
}

// SocketPath returns where the bus named name listens in dir: dir/name.sock.
func SocketPath(dir, name string) string { return filepath.Join(dir, name+".sock") }

// ResolveSocket picks a bus socket the way busd and the bus command do: an
// explicit socket path first, then $BUSD_SOCKET, then dir (or Dir() if
// empty) with name (or DefaultBus if empty).
func ResolveSocket(socket, dir, name string) string {
	switch {
	case socket != "":
		return socket
	case os.Getenv("BUSD_SOCKET") != "":
		return os.Getenv("BUSD_SOCKET")
	}
	if dir == "" {
		dir = Dir()
	}
	if name == "" {
		name = DefaultBus
	}
	return SocketPath(dir, name)
}
