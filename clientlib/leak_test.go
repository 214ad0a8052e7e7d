package clientlib

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Leaks. After every test has run and cleaned up, nothing of a Conn may
// be left: no goroutine running this module's code or fsnotify's, and no
// socket, inotify instance or pidfd open (descriptors the runtime keeps,
// such as its epoll instance, are not ours). TestMain checks it once for
// the whole package, so every test that closes its Conns is a leak test.

// leakGrace bounds how long the check waits for goroutines that are on
// their way out (a handler finishing, a reader seeing its socket closed).
const leakGrace = 10 * time.Second

// checkLeaks returns what was left behind, or nil.
func checkLeaks() error {
	deadline := time.Now().Add(leakGrace)
	for {
		goroutines, fds := leftGoroutines(), leftFDs()
		if len(goroutines) == 0 && len(fds) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("left behind after every test: %d goroutines, descriptors %v:\n\n%s",
				len(goroutines), fds, strings.Join(goroutines, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond) // nothing to wait on: they are leaving, or leaked
	}
}

// leftGoroutines returns the stacks of goroutines running code of this
// module or of fsnotify, other than this one.
func leftGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "clientlib.checkLeaks") || strings.Contains(g, "clientlib.TestMain") {
			continue
		}
		if strings.Contains(g, "github.com/busd/busd/") || strings.Contains(g, "fsnotify") {
			left = append(left, g)
		}
	}
	return left
}

// leftFDs returns the open descriptors that a Conn, a Watch or a test
// broker would have made: sockets, inotify instances, pidfds, and the
// memfds of large payloads.
func leftFDs() []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return []string{err.Error()}
	}
	var left []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "socket:") || strings.Contains(target, "inotify") || strings.Contains(target, "pidfd") ||
			strings.HasPrefix(target, "/memfd:busd-payload") { // a payload's memfd (largepayload.go)
			left = append(left, e.Name()+" "+target)
		}
	}
	return left
}
