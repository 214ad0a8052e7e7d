package clientlib

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fsnotify/fsnotify"

	"github.com/busd/busd/unixsock"
)

// BusEvent is a change Watch reports: a bus came up or went down.
type BusEvent struct {
	// Name is the bus's name, for WithBus.
	Name string
	// Socket is the bus's socket, DIR/Name.sock, for WithSocket.
	Socket string
	// Up says whether the bus is up now: its broker runs and holds its
	// lock.
	Up bool
}

// Watch reports the buses in the socket directory dir (Dir() if empty)
// that come up and go down, until ctx ends. It reports first the buses up
// when it is called, Up and in order of name, then each change as it
// sees it, in order; a bus goes up and down in turn, never reported up
// (or down) twice in a row. Once ctx ends the channel closes, and nothing
// of the watch remains: no goroutine, no descriptor. A consumer that does
// not keep up holds the watch back, and may miss a bus that came and went
// meanwhile, but not the state it ends in.
//
// A bus is up while its broker holds the lock beside its socket (DIR/N.lock
// for DIR/N.sock, see unixsock.ProbeBus), not merely while its socket file
// exists: a broker that was killed leaves its socket behind, and Watch
// does not count such a stale socket. The directory is watched with
// fsnotify (inotify). A socket appearing (a broker renames it into place
// once it listens) has its lock checked, and a socket removed (a broker
// stopping removes it) is down. Files other than N.sock, and names that
// start with a dot (a broker's socket before it is published), are
// ignored. If events were lost (the kernel's queue overflowed), Watch
// reads the directory again and reports what changed.
//
// A broker killed (SIGKILL) leaves its socket behind; Watch learns of its
// death through a pidfd of the pid its lock records, and reports the bus
// down then, and up again once a new broker holds the lock and has put its
// socket in place. A lock this process may not read (another user's bus)
// counts as held while the socket exists, and then only the socket tells.
//
// dir need not exist: Watch then watches the nearest directory above it
// that does, and reports the buses in it once it appears; if it is removed,
// its buses are down. Watch does not check that dir can be trusted:
// Connect does, before it sends anything. It fails if fsnotify cannot set
// its watch (the system's inotify limits); the channel also closes early,
// before ctx ends, if the watch cannot follow the directory later.
func Watch(ctx context.Context, dir string) (<-chan BusEvent, error) {
	if dir == "" {
		dir = Dir()
	}
	dw, err := newDirWatch(dir)
	if err != nil {
		return nil, fmt.Errorf("bus: watching %s: %w", dir, err)
	}
	bw := &busWatch{dw: dw, up: map[string]bool{}, out: make(chan BusEvent), deaths: newDeathWatch()}
	first := bw.rescan() // after the watch is set: nothing slips between
	bw.followBrokers()
	go bw.run(ctx, first)
	return bw.out, nil
}

// busWatch is the state of one Watch, owned by its goroutine (run).
type busWatch struct {
	dw     *dirWatch
	up     map[string]bool // the buses reported up, by name
	out    chan BusEvent
	deaths *deathWatch // the brokers of the buses up (watchpid.go)
}

// followBrokers watches for the death of the brokers of the buses up,
// and only of those.
func (bw *busWatch) followBrokers() {
	bw.deaths.sync(bw.up, func(name string) string { return SocketPath(bw.dw.dir, name) })
}

// run sends pending, then the changes the watch sees, until ctx ends or
// the watch fails; it closes the watch, and then out.
func (bw *busWatch) run(ctx context.Context, pending []BusEvent) {
	defer close(bw.out)
	defer bw.dw.close()
	defer bw.deaths.stop()
	for {
		// While the consumer is behind, the kernel queues the events,
		// and an overflow makes a rescan: what is pending stays bounded.
		for _, ev := range pending {
			select {
			case bw.out <- ev:
			case <-ctx.Done():
				return
			}
		}
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, open := <-bw.dw.w.Events:
			if !open {
				return
			}
			pending, ok = bw.handle(ev)
		case _, open := <-bw.dw.w.Errors:
			if !open {
				return
			}
			pending, ok = bw.refollow() // events were lost
		case name := <-bw.deaths.died:
			bw.deaths.unfollow(name)
			pending, ok = bw.set(name, busUp(SocketPath(bw.dw.dir, name))), true
		}
		if !ok {
			return
		}
		bw.followBrokers()
	}
}

// handle returns the changes an fsnotify event shows, and false if the
// watch can no longer follow the directory.
func (bw *busWatch) handle(ev fsnotify.Event) ([]BusEvent, bool) {
	if filepath.Dir(ev.Name) == bw.dw.dir && bw.dw.inDir() {
		name, ok := busName(filepath.Base(ev.Name))
		if !ok || !ev.Has(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) {
			return nil, true
		}
		return bw.set(name, busUp(ev.Name)), true
	}
	if bw.dw.onWay(ev.Name) { // dir, or a directory above it, came or went
		return bw.refollow()
	}
	return nil, true
}

// refollow moves the watch to dir or the directory above it that exists,
// and returns what changed in dir meanwhile; false if no watch can be set.
func (bw *busWatch) refollow() ([]BusEvent, bool) {
	if err := bw.dw.follow(); err != nil {
		return nil, false
	}
	return bw.rescan(), true
}

// set records that the bus name is up or not and returns the change to
// report, if it is one.
func (bw *busWatch) set(name string, up bool) []BusEvent {
	if bw.up[name] == up {
		return nil
	}
	if up {
		bw.up[name] = true
	} else {
		delete(bw.up, name)
	}
	return []BusEvent{{Name: name, Socket: SocketPath(bw.dw.dir, name), Up: up}}
}

// rescan reads the directory and returns how the buses up in it differ
// from those reported, recording them as reported.
func (bw *busWatch) rescan() []BusEvent {
	now := scanBuses(bw.dw.dir)
	evs := diffBuses(bw.dw.dir, bw.up, now)
	bw.up = now
	return evs
}

// scanBuses returns the buses up in dir, by name; none if dir cannot be
// read (it does not exist).
func scanBuses(dir string) map[string]bool {
	up := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if name, ok := busName(e.Name()); ok && busUp(filepath.Join(dir, name+".sock")) {
			up[name] = true
		}
	}
	return up
}

// diffBuses returns the events that take a consumer from the buses was
// up to those now up, in dir: those gone down, then those come up, each in
// order of name.
func diffBuses(dir string, was, now map[string]bool) []BusEvent {
	var down, up []BusEvent
	for name := range was {
		if !now[name] {
			down = append(down, BusEvent{Name: name, Socket: SocketPath(dir, name)})
		}
	}
	for name := range now {
		if !was[name] {
			up = append(up, BusEvent{Name: name, Socket: SocketPath(dir, name), Up: true})
		}
	}
	byName := func(a, b BusEvent) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(down, byName)
	slices.SortFunc(up, byName)
	return append(down, up...)
}

// busName returns the name of the bus whose socket has the file name base
// (N for N.sock), and false for other files and for dot-names.
func busName(base string) (string, bool) {
	name, ok := strings.CutSuffix(base, ".sock")
	if !ok || name == "" || strings.HasPrefix(base, ".") {
		return "", false
	}
	return name, true
}

// busUp reports whether a bus is up at the socket path: a socket is there
// and its broker holds its lock (unixsock.ProbeBus). A lock that cannot be
// read (another user's) counts as held.
func busUp(path string) bool {
	if !isSocket(path) {
		return false
	}
	info, err := unixsock.ProbeBus(path)
	return info.Alive || err != nil
}
