package clientlib

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/busd/busd/unixsock"
)

// deathWatch learns, through a pidfd of each up bus's broker, that the
// broker has died: a broker killed (SIGKILL) leaves its socket behind and
// its lock released, and inotify reports neither. A pidfd becomes readable
// when its process exits, and Go's poller waits for that without a thread
// of its own, so each up bus costs one descriptor and one parked
// goroutine, and nothing while its broker runs.
type deathWatch struct {
	died  chan string         // names of the buses whose broker exited
	quit  chan struct{}       // closed by stop
	files map[string]*os.File // the pidfds, by bus name (nil: not watchable); owned by Watch's goroutine
	wg    sync.WaitGroup
}

func newDeathWatch() *deathWatch {
	return &deathWatch{died: make(chan string), quit: make(chan struct{}), files: map[string]*os.File{}}
}

// follow starts watching the broker of the bus name at socket, if it can:
// it reads the broker's pid from the lock (unixsock.ProbeBus). A broker
// already gone is reported dead at once. One whose pid it cannot learn is
// not watched (Watch then sees it only through its socket): if its lock
// cannot be read, or its pid is not one this process sees (a broker in
// another pid namespace), follow records that and does not try again while
// the bus stays up; if its lock has no pid yet, it tries again at the
// watch's next event.
func (d *deathWatch) follow(name, socket string) {
	if _, ok := d.files[name]; ok {
		return
	}
	info, err := unixsock.ProbeBus(socket)
	if err != nil {
		d.files[name] = nil // unreadable: it will stay so
		return
	}
	if !info.Alive || info.PID <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(info.PID, unix.PIDFD_NONBLOCK)
	if err != nil {
		if err != unix.ESRCH {
			return
		}
		// Reporting a broker whose lock is still held would only bring
		// Watch back here at once, and again, without end.
		if info, err := unixsock.ProbeBus(socket); err == nil && !info.Alive {
			d.report(name)
		} else {
			d.files[name] = nil
		}
		return
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "pidfd")
	d.files[name] = f
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		rc, err := f.SyscallConn()
		if err != nil {
			return
		}
		// Read's function runs until it says the wait is over; the poller
		// wakes it when the pidfd becomes readable (the process exited) or
		// is closed (unfollow, stop: then Read fails).
		err = rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(p, 0)
			return n > 0
		})
		if err == nil {
			d.report(name)
		}
	}()
}

// report tells Watch's goroutine that name's broker died, unless the
// watch is stopping.
func (d *deathWatch) report(name string) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case d.died <- name:
		case <-d.quit:
		}
	}()
}

// unfollow stops watching name's broker.
func (d *deathWatch) unfollow(name string) {
	if f, ok := d.files[name]; ok {
		if f != nil {
			f.Close()
		}
		delete(d.files, name)
	}
}

// sync makes the watched brokers those of the buses up.
func (d *deathWatch) sync(up map[string]bool, socket func(name string) string) {
	for name := range d.files {
		if !up[name] {
			d.unfollow(name)
		}
	}
	for name := range up {
		d.follow(name, socket(name))
	}
}

// stop ends every wait and returns once their goroutines have.
func (d *deathWatch) stop() {
	close(d.quit)
	for name := range d.files {
		d.unfollow(name)
	}
	d.wg.Wait()
}
