package unixsock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockPath returns the lock file for a socket path: DIR/N.lock for
// DIR/N.sock, path+".lock" otherwise.
func lockPath(path string) string {
	if base, ok := strings.CutSuffix(path, ".sock"); ok {
		return base + ".lock"
	}
	return path + ".lock"
}

// lockRecord is what the holder of a lock file writes into it, as one line
// of JSON (docs/PROTOCOL.md, section 1): {"pid":…,"started":…,"socket":…}.
type lockRecord struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Socket  string    `json:"socket"`
}

// lockRetries bounds how often acquireLock tries again when the lock is
// held: a prober (ProbeBus) holds a shared lock for the moment it takes
// to test it, and must not make a starting server believe another one is
// live. A live server holds its lock for its whole life, so the retries
// only delay the refusal, by at most about 64 ms.
var lockRetries = []time.Duration{1, 2, 4, 8, 16, 32}

// lockWait waits between tries; tests replace it.
var lockWait = func(d time.Duration) { time.Sleep(d) }

// acquireLock takes an exclusive flock(2) on the lock file at lpath, creating
// it 0600 if needed, and records our pid, the time and the socket path in
// it for the error a refused listener reports and for [ProbeBus]. The
// kernel drops the lock when the returned file is closed or the process
// dies, so the lock, not the socket file, says whether a server is alive.
// The file itself is never removed: a process that unlinked it could leave
// a competitor holding a lock on an orphaned inode while a third locks a
// new file, and both would believe they own the path.
func acquireLock(lpath, socket string) (*os.File, error) {
	f, err := os.OpenFile(lpath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	for i := 0; ; {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == unix.EINTR {
			continue
		}
		if err != unix.EWOULDBLOCK || i == len(lockRetries) {
			break
		}
		lockWait(lockRetries[i] * time.Millisecond)
		i++
	}
	if err == unix.EWOULDBLOCK {
		rec, _ := readLockRecord(f)
		f.Close()
		if rec.PID > 0 {
			return nil, fmt.Errorf("%w (pid %d holds %s)", ErrServerRunning, rec.PID, lpath)
		}
		return nil, fmt.Errorf("%w (pid unknown, lock %s)", ErrServerRunning, lpath)
	}
	if err != nil {
		f.Close()
		return nil, os.NewSyscallError("flock", err)
	}
	rec := lockRecord{PID: os.Getpid(), Started: time.Now().UTC(), Socket: socket}
	if err := writeLockRecord(f, rec); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeLockRecord replaces the lock file's content with rec. It writes
// before it truncates, so a reader never finds the file empty: it finds
// the old record, or the new one, possibly followed by the old one's tail,
// which readLockRecord ignores.
func writeLockRecord(f *os.File, rec lockRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}

// maxLockRecord bounds what readLockRecord reads: a record is one short
// line (a socket path is at most 107 bytes).
const maxLockRecord = 1024

// readLockRecord returns what the lock file records, from its first line:
// the JSON record, or a bare pid as written by earlier versions. It fails
// if the file is empty or its first line is neither.
func readLockRecord(f *os.File) (lockRecord, error) {
	var buf [maxLockRecord]byte
	n, _ := f.ReadAt(buf[:], 0)
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	line = bytes.TrimSpace(line)
	var rec lockRecord
	if pid, err := strconv.Atoi(string(line)); err == nil && pid > 0 {
		rec.PID = pid
		return rec, nil
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return lockRecord{}, fmt.Errorf("lock file %s: %q is no record: %w", f.Name(), line, err)
	}
	if rec.PID < 0 {
		rec.PID = 0
	}
	return rec, nil
}
