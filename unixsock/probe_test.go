package unixsock

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeBus tells a held lock from a free one, and reads the holder's
// record: nothing before the first listener, the live listener's pid,
// start time and path while it listens, and the same record, no longer
// alive, once it has closed.
func TestProbeBus(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "p.sock")
	info, err := ProbeBus(path)
	if err != nil || info.Alive || info.PID != 0 || info.Lock != lockPath(path) {
		t.Fatalf("before any listener: %+v, %v; want not alive, no pid, lock %s", info, err, lockPath(path))
	}
	before := time.Now()
	l := listenT(t, path)
	after := time.Now()
	info, err = ProbeBus(path)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Alive || info.PID != os.Getpid() || info.Recorded != path || info.Socket != path {
		t.Fatalf("while listening: %+v; want alive, pid %d, socket %s", info, os.Getpid(), path)
	}
	if info.Started.Before(before.Truncate(time.Microsecond)) || info.Started.After(after) {
		t.Errorf("started %v; want between %v and %v", info.Started, before, after)
	}
	// The probe took no lock that stays: the listener can be replaced
	// once it closes.
	l.Close()
	info, err = ProbeBus(path)
	if err != nil || info.Alive || info.PID != os.Getpid() {
		t.Fatalf("after Close: %+v, %v; want not alive, last pid %d", info, err, os.Getpid())
	}
	listenT(t, path)
}

// A lock file from an older busd, which wrote only its pid, still names
// it; one with garbage names nobody but is still judged by its lock.
func TestProbeBusOldAndBadRecords(t *testing.T) {
	for _, tc := range []struct {
		content string
		pid     int
	}{
		{"4242\n", 4242},
		{"not a record\n", 0},
		{`{"pid":7,"started":"2024-01-02T03:04:05Z","socket":"/x.sock"}` + "\n" + `tail of an older, longer record"}`, 7},
	} {
		path := tempSockPath(t, "o.sock")
		if err := os.WriteFile(lockPath(path), []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := ProbeBus(path)
		if err != nil || info.Alive || info.PID != tc.pid {
			t.Errorf("lock %q: %+v, %v; want not alive, pid %d", tc.content, info, err, tc.pid)
		}
	}
}

// A prober's shared lock, held for a moment, does not make a starting
// listener believe a server is live: Listen tries again.
func TestListenOutlastsAProbe(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "r.sock")
	f := holdProbeLock(t, path)
	waits := 0
	defer func(w func(time.Duration)) { lockWait = w }(lockWait)
	lockWait = func(time.Duration) {
		// The probe ends while Listen waits to try again.
		if waits++; waits == 2 {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
		}
	}
	listenT(t, path)
	if waits != 2 {
		t.Errorf("Listen waited %d times; want 2 (refused twice while the probe held its lock)", waits)
	}
}

// A shared lock held for good is a live holder as far as Listen can tell:
// it gives up after its tries, saying a server holds the lock.
func TestListenGivesUpOnAHeldLock(t *testing.T) {
	checkFDLeaks(t)
	path := tempSockPath(t, "g.sock")
	holdProbeLock(t, path)
	defer func(w func(time.Duration)) { lockWait = w }(lockWait)
	waits := 0
	lockWait = func(time.Duration) { waits++ }
	if _, err := Listen(path); !errors.Is(err, ErrServerRunning) {
		t.Fatalf("Listen = %v; want ErrServerRunning", err)
	}
	if waits != len(lockRetries) {
		t.Errorf("Listen waited %d times; want %d", waits, len(lockRetries))
	}
}

// holdProbeLock takes the shared lock a prober takes on path's lock file,
// creating the file, and returns it; it is closed, and the lock released,
// on cleanup.
func holdProbeLock(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(lockPath(path), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return f
}
