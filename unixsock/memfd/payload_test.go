package memfd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPayloadRoundTrip sends payloads of several sizes the way the bus
// does (FromBytes, SCM_RIGHTS, ReadPayload) and checks every byte.
func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 1<<20 + 3} {
		src := make([]byte, size)
		fill(src)
		f, err := FromBytes(src)
		if err != nil {
			t.Fatal(err)
		}
		got := pass(t, f)
		f.Close()
		if err := Verify(int(got.Fd()), int64(size)); err != nil {
			t.Fatalf("Verify of %d bytes: %v", size, err)
		}
		data, err := ReadPayload(got, int64(size))
		if err != nil {
			t.Fatalf("ReadPayload of %d bytes: %v", size, err)
		}
		if !bytes.Equal(data, src) {
			t.Fatalf("ReadPayload of %d bytes returned other bytes", size)
		}
		if n, err := Size(int(got.Fd())); n != int64(size) || err != nil {
			t.Fatalf("Size = %d, %v; want %d", n, err, size)
		}
		again := NewBuffer(size)
		if err := ReadInto(got, again); err != nil || !bytes.Equal(again, src) {
			t.Fatalf("ReadInto of %d bytes: equal %v, %v", size, bytes.Equal(again, src), err)
		}
		// The sender can no longer change it: every seal is there.
		if _, err := unix.Pwrite(int(got.Fd()), []byte("x"), 0); size > 0 && !errors.Is(err, unix.EPERM) {
			t.Fatalf("pwrite into a sent payload = %v; want EPERM", err)
		}
	}
}

// TestReadPayloadRefuses hands ReadPayload what a hostile sender could:
// an unsealed memfd, one whose size is not the one announced (truncated
// or grown before sealing), a pipe, a closed file.
func TestReadPayloadRefuses(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	closed := rawMemfd(t, 10, RequiredSeals)
	closed.Close()
	for _, tc := range []struct {
		name    string
		f       *os.File
		size    int64
		want    error
		mention string
	}{
		{"unsealed", rawMemfd(t, 10, 0), 10, ErrNotSealed, "F_SEAL_WRITE"},
		{"write seal only", rawMemfd(t, 10, unix.F_SEAL_WRITE), 10, ErrNotSealed, "missing F_SEAL_SHRINK"},
		{"truncated", rawMemfd(t, 5, RequiredSeals), 10, ErrWrongSize, "holds 5 bytes, the message says 10"},
		{"grown", rawMemfd(t, 20, RequiredSeals), 10, ErrWrongSize, "holds 20 bytes"},
		{"pipe", pr, 10, ErrNotMemfd, "F_GET_SEALS"},
		{"closed", closed, 10, os.ErrClosed, "not a memfd"},
		{"negative size", rawMemfd(t, 10, RequiredSeals), -1, ErrTooLarge, "-1 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == ErrNotSealed || tc.want == ErrNotMemfd {
				if _, err := Size(int(tc.f.Fd())); !errors.Is(err, tc.want) {
					t.Fatalf("Size = %v; want %v", err, tc.want)
				}
			}
			data, err := ReadPayload(tc.f, tc.size)
			if data != nil || !errors.Is(err, tc.want) {
				t.Fatalf("ReadPayload = %d bytes, %v; want %v", len(data), err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

// TestFromReader copies a file into a sealed memfd and refuses one over
// the limit without leaking its memfd.
func TestFromReader(t *testing.T) {
	src := make([]byte, 3<<20+17)
	fill(src)
	file, err := os.CreateTemp(t.TempDir(), "payload")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Write(src); err != nil {
		t.Fatal(err)
	}
	file.Seek(0, io.SeekStart)
	f, err := FromReader(file, int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := ReadPayload(f, int64(len(src)))
	if err != nil || !bytes.Equal(data, src) {
		t.Fatalf("ReadPayload after FromReader: equal %v, %v", bytes.Equal(data, src), err)
	}
	// Not a file: copied through user memory, to the same result.
	g, err := FromReader(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if data, err := ReadPayload(g, int64(len(src))); err != nil || !bytes.Equal(data, src) {
		t.Fatalf("ReadPayload after FromReader of a bytes.Reader: equal %v, %v", bytes.Equal(data, src), err)
	}
	// From the file's own offset, as io.Copy would.
	file.Seek(1000, io.SeekStart)
	h, err := FromReader(file, int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if data, err := ReadPayload(h, int64(len(src)-1000)); err != nil || !bytes.Equal(data, src[1000:]) {
		t.Fatalf("FromReader from offset 1000: equal %v, %v", bytes.Equal(data, src[1000:]), err)
	}
	fds0, _ := resources(t)
	file.Seek(0, io.SeekStart)
	if f, err := FromReader(file, int64(len(src)-1)); f != nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("FromReader over the limit = %v, %v; want ErrTooLarge", f, err)
	}
	if fds1, _ := resources(t); fds1 != fds0 {
		t.Fatalf("FromReader over the limit left %d descriptors open", fds1-fds0)
	}
}

// hugePages marks the whole huge pages inside a large buffer for
// transparent huge pages: the kernel lists the range with the "hg" flag
// in /proc/self/smaps (unless it has no transparent huge pages at all,
// when madvise refuses MADV_HUGEPAGE and there is nothing to ask for).
func TestHugePagesHint(t *testing.T) {
	buf := make([]byte, 8*hugePageSize)
	hugePages(buf)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	first := (start + hugePageSize - 1) &^ (hugePageSize - 1)
	probe := make([]byte, 4*hugePageSize) // asked apart from buf, which must owe its flag to hugePages alone
	ps := uintptr(unsafe.Pointer(unsafe.SliceData(probe)))
	pf := (ps + hugePageSize - 1) &^ (hugePageSize - 1)
	if err := unix.Madvise(probe[pf-ps:pf-ps+hugePageSize], unix.MADV_HUGEPAGE); errors.Is(err, unix.EINVAL) {
		if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err == nil {
			t.Fatal("the kernel has transparent huge pages but refuses MADV_HUGEPAGE")
		}
		return // nothing to ask for on this kernel
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var inRange bool
	for _, line := range strings.Split(string(smaps), "\n") {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 { // a mapping's first line: "lo-hi perms ..."
			inRange = lo <= first && first < hi
			continue
		}
		if inRange && strings.HasPrefix(line, "VmFlags:") {
			if !strings.Contains(line, " hg") {
				t.Fatalf("the buffer's huge pages are not marked for THP: %s", line)
			}
			data := make([]byte, len(buf))
			fill(data)
			copy(buf, data)
			if !bytes.Equal(buf, data) {
				t.Fatal("the buffer no longer holds what is written to it")
			}
			return
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds the buffer at %#x", first)
}
