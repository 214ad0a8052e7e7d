package memfd

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Mapping is a read-only, shared mapping of a sealed memfd, made by [Open].
// The bytes cannot change while it exists and reading them cannot fault.
type Mapping struct {
	mu   sync.Mutex
	data []byte // nil for size 0 and after Close
	size int64
}

// Open checks that f is a memfd that its sender can no longer change, and
// maps it read-only. Before mapping anything it checks, in this order, that
//
//   - f is an open memfd: F_GET_SEALS succeeds, which it does only on shmem
//     and hugetlbfs files (else the error wraps [ErrNotMemfd]);
//   - it carries all of [RequiredSeals] (else [ErrNotSealed], naming the
//     seals missing): with F_SEAL_SEAL present the seals can no longer
//     change, and with F_SEAL_SHRINK and F_SEAL_GROW neither can the size,
//     so what is checked next stays true;
//   - its size, from fstat(2), is at most maxSize (else [ErrTooLarge]).
//
// It then maps the whole file PROT_READ, MAP_SHARED; a size-0 memfd gets no
// mapping and empty Bytes. A negative maxSize is an error.
//
// Open does not take f: the caller keeps it and may close it as soon as
// Open returns, since a mapping does not need the descriptor. Open keeps no
// reference to f. It holds f's descriptor (through [os.File.SyscallConn])
// while it checks and maps, so a concurrent f.Close cannot make it check
// one file and map another that reused the number.
func Open(f *os.File, maxSize int64) (*Mapping, error) {
	if f == nil {
		return nil, fmt.Errorf("memfd: open: %w: nil file: %w", ErrNotMemfd, os.ErrInvalid)
	}
	if maxSize < 0 {
		return nil, fmt.Errorf("memfd: open %s: negative limit %d: %w", f.Name(), maxSize, unix.EINVAL)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("memfd: open %s: %w: %w", f.Name(), ErrNotMemfd, err)
	}
	var m *Mapping
	var openErr error
	cerr := rc.Control(func(fd uintptr) { m, openErr = openFD(int(fd), maxSize) })
	if cerr != nil { // f was closed; Control wraps no os.ErrClosed of its own
		return nil, fmt.Errorf("memfd: open %s: %w: %w (%v)", f.Name(), ErrNotMemfd, os.ErrClosed, cerr)
	}
	if openErr != nil {
		return nil, fmt.Errorf("memfd: open %s: %w", f.Name(), openErr)
	}
	return m, nil
}

// openFD is Open's work on a descriptor it does not own.
func openFD(fd int, maxSize int64) (*Mapping, error) {
	size, err := stat(fd)
	if err != nil {
		return nil, err
	}
	if size > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, maxSize)
	}
	m := &Mapping{size: size}
	if size == 0 {
		return m, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%w: %d bytes do not fit the address space", ErrTooLarge, size)
	}
	m.data, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return m, nil
}

// sealNames names the seals set in s, for error messages.
func sealNames(s int) string {
	var names []string
	for _, n := range []struct {
		bit  int
		name string
	}{
		{unix.F_SEAL_SHRINK, "F_SEAL_SHRINK"},
		{unix.F_SEAL_GROW, "F_SEAL_GROW"},
		{unix.F_SEAL_WRITE, "F_SEAL_WRITE"},
		{unix.F_SEAL_SEAL, "F_SEAL_SEAL"},
	} {
		if s&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ", ")
}

// Bytes returns the mapped content of the memfd, or nil for an empty one
// or after Close. The slice is read-only memory: the caller must never
// write to it (a write faults and crashes the process), nor use it after
// Close (that faults too). Copy out anything needed longer.
func (m *Mapping) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data
}

// Size returns the memfd's size, checked by Open; it does not change at
// Close.
func (m *Mapping) Size() int64 { return m.size }

// Close unmaps the memfd. It is idempotent and may be called from any
// goroutine, but no goroutine may still be reading the slice from
// [Mapping.Bytes] when it does: the memory is gone once Close returns.
func (m *Mapping) Close() error {
	m.mu.Lock()
	data := m.data
	m.data = nil
	m.mu.Unlock()
	if data == nil {
		return nil
	}
	if err := unix.Munmap(data); err != nil {
		return fmt.Errorf("memfd: close: %w", os.NewSyscallError("munmap", err))
	}
	return nil
}
