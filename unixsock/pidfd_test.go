package unixsock

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// A duplicate of the peer's pidfd is a pidfd of its own for the same
// process, close-on-exec, and still works once the Conn is closed.
func TestDupPeerPidFD(t *testing.T) {
	checkFDLeaks(t)
	a, _ := socketPair(t)
	fd, err := a.DupPeerPidFD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if fd == a.PeerPidFD() {
		t.Fatalf("DupPeerPidFD returned the Conn's own pidfd %d", fd)
	}
	a.Close()
	checkPidFD(t, fd, os.Getpid())
	if _, err := a.DupPeerPidFD(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("DupPeerPidFD after Close: %v; want net.ErrClosed", err)
	}
}

// DupPeerPidFD racing Close either returns a pidfd of the peer or
// net.ErrClosed: never a duplicate of a number Close has freed and
// another file has taken. The race detector checks the locking; the
// files opened meanwhile would take the freed number if Close let a
// duplicate through after it.
func TestDupPeerPidFDRacesClose(t *testing.T) {
	checkFDLeaks(t)
	for range 200 {
		a, b := socketPair(t)
		var wg sync.WaitGroup
		var other *os.File
		wg.Go(func() { a.Close() })
		wg.Go(func() { other, _ = os.Open(os.DevNull) })
		fd, err := a.DupPeerPidFD()
		wg.Wait()
		if other != nil {
			other.Close()
		}
		switch {
		case err == nil:
			checkPidFD(t, fd, os.Getpid())
			unix.Close(fd)
		case !errors.Is(err, net.ErrClosed):
			t.Fatalf("DupPeerPidFD: %v; want a pidfd or net.ErrClosed", err)
		}
		b.Close()
	}
}
