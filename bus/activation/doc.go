// Package activation starts services on demand: the Activator the broker
// calls when a request comes for a name nobody owns (bus.Config.Activator,
// which it satisfies without importing package bus).
//
// The services are described by the files of a services directory, one a
// name, DIR/NAME.service (Parse gives the format; docs/ACTIVATION.md
// describes it for users). The directory is watched with fsnotify and
// read again when anything in it changes, and when Reload is called (busd
// calls it on SIGHUP). Only busd's user, and root, may write to the
// directory and its files: whoever can write there can run commands as
// busd's user, so a directory others may write to is refused, and so is
// such a file, and so is a directory in one others may write to (unless
// it is sticky), where they could put one of theirs in its place.
//
// A service is either a command the Activator runs itself, or a systemd
// unit it asks systemd to start (systemctl start --no-block). A command
// runs with a clean environment (PATH, HOME, USER, LOGNAME, the file's
// env lines, BUSD_SOCKET and BUSD_SERVICE), stdin /dev/null, a session of
// its own, cwd /, its file's user (only when busd runs as root), and no
// descriptor but 0, 1 and 2; its stdout and stderr lines go to the
// Activator's logger, bounded in length and rate.
//
// # Goroutines
//
// One watches the directory. Each start has one that runs it (starting
// the process, or systemctl) and, for a process, waits for its end on a
// pidfd, plus one for each of its stdout and stderr, reading them. All of
// them are counted in one WaitGroup, which Close waits for: Close closes
// the directory watch, the pidfds and the pipes, so that every goroutine
// ends without the services being stopped.
//
// # Locks
//
// Activator.reloadMu orders loads of the directory; it is taken before
// Activator.mu, which guards the services, the starts and their state.
// No callback (failed) is called under either, and nothing blocks under
// mu.
package activation
