package bus

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// reservedFDs are descriptors the broker keeps outside MaxFDs: its
// listeners, its log, the runtime's own, and room to accept a connection
// only to tell it that it is refused.
const reservedFDs = 64

// machine is what DefaultConfig derives the broker-wide budgets from.
type machine struct {
	fdLimit int   // RLIMIT_NOFILE's soft limit
	memory  int64 // bytes the process may use: physical memory, or its cgroup's limit if lower
	ram     int64 // physical memory
}

func probeMachine() machine {
	m := machine{fdLimit: 1024, memory: 1 << 30, ram: 1 << 30}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < 1<<31 {
		m.fdLimit = int(rl.Cur)
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.memory = int64(si.Totalram) * int64(si.Unit)
		m.ram = m.memory
	}
	if limit, ok := cgroupMemoryLimit(); ok && limit < m.memory {
		m.memory = limit
	}
	return m
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2),
// if it has one.
func cgroupMemoryLimit() (int64, bool) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		path, ok := strings.CutPrefix(s.Text(), "0::")
		if !ok {
			continue
		}
		b, err := os.ReadFile("/sys/fs/cgroup" + path + "/memory.max")
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n, err == nil && n > 0
	}
	return 0, false
}

// RaiseFDLimit raises the process's soft RLIMIT_NOFILE to its hard limit,
// as a broker that holds every descriptor in flight should (dbus-daemon
// does the same, CVE-2014-7824), and returns the new soft limit. Call it
// before DefaultConfig, which sizes MaxFDs from it.
func RaiseFDLimit() (int, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return int(min(rl.Cur, 1<<31-1)), nil
}
