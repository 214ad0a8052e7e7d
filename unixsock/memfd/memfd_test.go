package memfd

import (
	"bytes"
	"errors"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 1<<20 + 3} {
		w, err := New(size)
		if err != nil {
			t.Fatalf("New(%d): %v", size, err)
		}
		if got := len(w.Bytes()); got != size {
			t.Fatalf("New(%d): len(Bytes()) = %d", size, got)
		}
		fill(w.Bytes())
		want := bytes.Clone(w.Bytes())
		f, err := w.Seal()
		if err != nil {
			t.Fatalf("Seal(%d): %v", size, err)
		}
		if w.Bytes() != nil {
			t.Fatalf("size %d: Bytes() after Seal is not nil", size)
		}
		r := pass(t, f)
		f.Close()
		m, err := Open(r, int64(size))
		if err != nil {
			t.Fatalf("Open(%d): %v", size, err)
		}
		r.Close() // the mapping must not need the descriptor
		if m.Size() != int64(size) {
			t.Fatalf("Size() = %d; want %d", m.Size(), size)
		}
		if got := m.Bytes(); !bytes.Equal(got, want) || len(got) != size {
			t.Fatalf("size %d: received bytes differ (len %d)", size, len(got))
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if m.Bytes() != nil {
			t.Fatal("Bytes() after Close is not nil")
		}
	}
}

func TestFromBytes(t *testing.T) {
	p := make([]byte, 10000)
	fill(p)
	f, err := FromBytes(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Open(f, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !bytes.Equal(m.Bytes(), p) {
		t.Fatal("bytes differ")
	}
}

func TestOpenRefuses(t *testing.T) {
	all := RequiredSeals
	regular, err := os.CreateTemp("", "memfd-test")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(regular.Name())
	defer regular.Close()
	regular.WriteString("data")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(sp[0]), "socket")
	defer sock.Close()
	defer unix.Close(sp[1])
	closed := rawMemfd(t, 10, all)
	closed.Close()

	for _, tc := range []struct {
		name    string
		f       *os.File
		max     int64
		want    error
		mention string // the message must contain it
	}{
		{"unsealed", rawMemfd(t, 10, 0), 10, ErrNotSealed, "F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_SEAL"},
		{"no shrink seal", rawMemfd(t, 10, all&^unix.F_SEAL_SHRINK), 10, ErrNotSealed, "missing F_SEAL_SHRINK"},
		{"no grow seal", rawMemfd(t, 10, all&^unix.F_SEAL_GROW), 10, ErrNotSealed, "missing F_SEAL_GROW"},
		{"no write seal", rawMemfd(t, 10, all&^unix.F_SEAL_WRITE), 10, ErrNotSealed, "missing F_SEAL_WRITE"},
		{"no seal seal", rawMemfd(t, 10, all&^unix.F_SEAL_SEAL), 10, ErrNotSealed, "missing F_SEAL_SEAL"},
		{"regular file", regular, 10, ErrNotMemfd, "F_GET_SEALS"},
		{"pipe", pr, 10, ErrNotMemfd, "F_GET_SEALS"},
		{"socket", sock, 10, ErrNotMemfd, "F_GET_SEALS"},
		{"too large", rawMemfd(t, 11, all), 10, ErrTooLarge, "11 bytes, limit 10"},
		{"too large for 0", rawMemfd(t, 1, all), 0, ErrTooLarge, "1 bytes, limit 0"},
		{"closed file", closed, 10, os.ErrClosed, "not a memfd"},
		{"closed descriptor", os.NewFile(1_000_000, "never-open"), 10, unix.EBADF, "not a memfd"},
		{"nil", nil, 10, ErrNotMemfd, "nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Open(tc.f, tc.max)
			if m != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, %v; want nil, %v", m, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
			if errors.Is(tc.want, os.ErrClosed) || errors.Is(tc.want, unix.EBADF) {
				if !errors.Is(err, ErrNotMemfd) {
					t.Fatalf("error %v does not match ErrNotMemfd", err)
				}
			}
		})
	}
	if _, err := Open(rawMemfd(t, 1, all), -1); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Open with a negative limit = %v; want EINVAL", err)
	}
}

// TestSealedCannotChange shows why a mapping from Open cannot fault: every
// way to change the size or the bytes of a sealed memfd fails with EPERM.
func TestSealedCannotChange(t *testing.T) {
	const size = 3 * 4096
	w, err := New(size)
	if err != nil {
		t.Fatal(err)
	}
	fill(w.Bytes())
	want := bytes.Clone(w.Bytes())
	f, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Open(f, size)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fd := int(f.Fd())
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"ftruncate shrink", func() error { return unix.Ftruncate(fd, 1) }},
		{"ftruncate to 0", func() error { return unix.Ftruncate(fd, 0) }},
		{"ftruncate grow", func() error { return unix.Ftruncate(fd, 2*size) }},
		{"fallocate grow", func() error { return unix.Fallocate(fd, 0, 0, 2*size) }},
		{"punch hole", func() error {
			return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, size)
		}},
		{"write", func() error { _, err := unix.Write(fd, []byte("x")); return err }},
		{"pwrite", func() error { _, err := unix.Pwrite(fd, []byte("x"), 100); return err }},
		{"writable mmap", func() error {
			b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err == nil {
				unix.Munmap(b)
			}
			return err
		}},
		{"remove seals", func() error { _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, 0); return err }},
	} {
		if err := tc.do(); !errors.Is(err, unix.EPERM) {
			t.Errorf("%s on a sealed memfd: %v; want EPERM", tc.name, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != size {
		t.Fatalf("size after the attempts = %d, %v; want %d", st.Size, err, size)
	}
	if !bytes.Equal(m.Bytes(), want) { // every page still readable, unchanged
		t.Fatal("mapping changed")
	}
}

// TestMappingIsReadOnly checks that a write through Bytes faults rather
// than changing the payload.
func TestMappingIsReadOnly(t *testing.T) {
	f, err := FromBytes([]byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Open(f, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (faulted bool) {
		defer func() { faulted = recover() != nil }()
		m.Bytes()[0] = 'P'
		return false
	}()
	if !faulted {
		t.Fatal("writing to the mapping did not fault")
	}
	if string(m.Bytes()) != "payload" {
		t.Fatalf("mapping = %q", m.Bytes())
	}
}

func TestSealRefusesWhileMappedWritable(t *testing.T) {
	w, err := New(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fill(w.Bytes())
	other, err := unix.Mmap(int(w.f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.Seal()
	if f != nil || !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "writable mapping") {
		t.Fatalf("Seal with another writable mapping = %v, %v; want an EBUSY naming the mapping", f, err)
	}
	other[0] = 42 // the other mapping still works
	if err := unix.Munmap(other); err != nil {
		t.Fatal(err)
	}
	f, err = w.Seal() // tried again once the mapping is gone
	if err != nil {
		t.Fatalf("Seal after the mapping went: %v", err)
	}
	defer f.Close()
	m, err := Open(f, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Bytes()[0] != 42 || m.Bytes()[1] != 7 {
		t.Fatalf("content = %v", m.Bytes()[:2])
	}
}

func TestWriterLifecycle(t *testing.T) {
	if _, err := New(-1); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("New(-1) = %v; want EINVAL", err)
	}
	w, err := New(100)
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Seal: %v", err)
	}
	if _, err := f.Stat(); err != nil {
		t.Fatalf("Close after Seal closed the sent file: %v", err)
	}
	if _, err := w.Seal(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Seal = %v; want os.ErrClosed", err)
	}
	w, err = New(100)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil || w.Bytes() != nil {
		t.Fatalf("second Close = %v, Bytes %v", err, w.Bytes())
	}
	if _, err := w.Seal(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Seal after Close = %v; want os.ErrClosed", err)
	}
}

func TestMappingCloseConcurrent(t *testing.T) {
	f, err := FromBytes(make([]byte, 8192))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Open(f, 8192)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- m.Close() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, maps := resources(t); maps != 0 {
		t.Fatalf("%d memfd mappings left", maps)
	}
}

func TestNoLeaks(t *testing.T) {
	fds0, maps0 := resources(t)
	for i := range 50 {
		size := 1 + i*1000
		w, err := New(size)
		if err != nil {
			t.Fatal(err)
		}
		fill(w.Bytes())
		f, err := w.Seal()
		if err != nil {
			t.Fatal(err)
		}
		m, err := Open(f, int64(size))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(f, int64(size-1)); !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
		f.Close()
		m.Close()

		w, _ = New(size) // discarded unsent
		w.Close()
		w, _ = New(size) // Seal refused, then discarded
		other, _ := unix.Mmap(int(w.f.Fd()), 0, size, unix.PROT_WRITE, unix.MAP_SHARED)
		if _, err := w.Seal(); err == nil {
			t.Fatal("Seal succeeded")
		}
		unix.Munmap(other)
		w.Close()

		u := rawMemfd(t, int64(size), unix.F_SEAL_WRITE)
		if _, err := Open(u, 1<<30); !errors.Is(err, ErrNotSealed) {
			t.Fatal(err)
		}
		u.Close()
		if _, err := Open(os.NewFile(1_000_000, "x"), 10); err == nil {
			t.Fatal("Open of a closed descriptor succeeded")
		}
		if f, err := FromBytes(make([]byte, size)); err == nil {
			f.Close()
		}
	}
	fds1, maps1 := resources(t)
	if fds1 != fds0 || maps1 != maps0 {
		t.Fatalf("descriptors %d -> %d, memfd mappings %d -> %d", fds0, fds1, maps0, maps1)
	}
}
