package memfd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// RequiredSeals are the seals [Writer.Seal] adds and [Open] requires: no
// write, no shrink, no grow, and no change to the seals themselves.
const RequiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL

// Writer is a memfd being filled in place through a writable shared
// mapping, before it is sealed and sent. Its methods are not safe for
// concurrent use.
type Writer struct {
	f    *os.File // nil once sealed or closed
	data []byte   // the writable mapping; nil after Seal, Close or for size 0
	size int
}

// New creates a memfd of size bytes (memfd_create with MFD_CLOEXEC and
// MFD_ALLOW_SEALING, then ftruncate) and maps it readable and writable,
// shared, so that what the caller writes into [Writer.Bytes] is the file's
// content. The pages are allocated, zeroed, on first touch. A size of 0
// makes an empty memfd and no mapping.
func New(size int) (*Writer, error) {
	w, err := newWriter(size, 0)
	if err != nil {
		return nil, fmt.Errorf("memfd: new %d bytes: %w", size, err)
	}
	return w, nil
}

// newWriter is New with extra mmap flags (the benchmarks pass
// MAP_POPULATE). It returns bare errors.
func newWriter(size int, mmapFlags int) (*Writer, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size: %w", unix.EINVAL)
	}
	fd, err := unix.MemfdCreate("busd-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:busd-payload")
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, os.NewSyscallError("ftruncate", err)
	}
	w := &Writer{f: f, size: size}
	if size > 0 {
		w.data, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|mmapFlags)
		if err != nil {
			f.Close()
			return nil, os.NewSyscallError("mmap", err)
		}
	}
	return w, nil
}

// Bytes returns the writable mapping of the whole memfd, to be filled in
// place. It is valid until [Writer.Seal] or [Writer.Close] unmaps it; using
// it after that faults. It returns nil for a size-0 memfd and after Seal or
// Close.
func (w *Writer) Bytes() []byte { return w.data }

// Size returns the size the memfd was created with.
func (w *Writer) Size() int { return w.size }

// Seal unmaps the writable mapping (a write seal cannot be added while any
// writable shared mapping of the file exists), adds F_SEAL_SHRINK,
// F_SEAL_GROW, F_SEAL_WRITE and F_SEAL_SEAL, and returns the memfd, read
// position 0, for the caller to send and close. From then on nobody can
// change its size or its bytes, and the Writer holds nothing: Bytes returns
// nil and Close does nothing.
//
// If the seals cannot be added, for instance with an error wrapping EBUSY
// because a writable mapping made elsewhere (another mmap of the same file,
// in this process or one it was passed to) still exists, Seal returns the
// error and the Writer keeps the file, unmapped: Seal may be tried again
// once that mapping is gone, and Close discards it.
func (w *Writer) Seal() (*os.File, error) {
	if w.f == nil {
		return nil, fmt.Errorf("memfd: seal: %w", os.ErrClosed)
	}
	if w.data != nil {
		if err := unix.Munmap(w.data); err != nil {
			return nil, fmt.Errorf("memfd: seal: %w", os.NewSyscallError("munmap", err))
		}
		w.data = nil
	}
	if _, err := unix.FcntlInt(w.f.Fd(), unix.F_ADD_SEALS, RequiredSeals); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("memfd: seal: a writable mapping of the memfd still exists elsewhere: %w",
				os.NewSyscallError("fcntl F_ADD_SEALS", err))
		}
		return nil, fmt.Errorf("memfd: seal: %w", os.NewSyscallError("fcntl F_ADD_SEALS", err))
	}
	f := w.f
	w.f = nil
	return f, nil
}

// Close unmaps and closes a memfd that was not sealed, to discard it. It
// does nothing after a successful Seal and is idempotent.
func (w *Writer) Close() error {
	var err error
	if w.data != nil {
		err = unix.Munmap(w.data)
		w.data = nil
		if err != nil {
			err = os.NewSyscallError("munmap", err)
		}
	}
	if w.f != nil {
		if cerr := w.f.Close(); err == nil {
			err = cerr
		}
		w.f = nil
	}
	if err != nil {
		return fmt.Errorf("memfd: close: %w", err)
	}
	return nil
}
