package memfd

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/unixsock"
	"golang.org/x/sys/unix"
)

// fill writes a pattern that differs page to page and byte to byte.
func fill(p []byte) {
	for i := range p {
		p[i] = byte(i*7 + i>>12)
	}
}

// pass sends f over a new socketpair with SCM_RIGHTS and returns the
// received file, which the test's cleanup closes.
func pass(t *testing.T, f *os.File) *os.File {
	t.Helper()
	a, b, err := unixsock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(5 * time.Second) // watchdog: never hang
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	if n, err := a.WriteWithFDs([]byte("m"), []int{int(f.Fd())}); n != 1 || err != nil {
		t.Fatalf("WriteWithFDs = %d, %v", n, err)
	}
	buf := make([]byte, 1)
	if n, err := b.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	fds, err := b.TakeFDs(1)
	if err != nil {
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(fds[0]), "received")
	t.Cleanup(func() { r.Close() })
	return r
}

// rawMemfd makes a memfd of size bytes with exactly the given seals, and
// with MFD_ALLOW_SEALING (an unsealable memfd carries F_SEAL_SEAL only).
func rawMemfd(t testing.TB, size int64, seals int) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd:test")
	t.Cleanup(func() { f.Close() })
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// resources counts this process's open descriptors and its mappings of
// memfds.
func resources(t testing.TB) (fds, maps int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mf, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "memfd:") {
			maps++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return len(ents), maps
}
