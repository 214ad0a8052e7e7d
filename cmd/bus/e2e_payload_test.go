package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// startBusdWith is startBusd with options.
func startBusdWith(t *testing.T, opts bustest.Options) *busd {
	b := &busd{Busd: bustest.StartWith(t, binDir, opts)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	b.ctx = ctx
	return b
}

// writePattern writes size bytes to a new file in dir, a pattern that
// differs from page to page, so that a page lost, repeated or swapped on
// the way shows.
func writePattern(t *testing.T, dir string, size int) string {
	t.Helper()
	path := filepath.Join(dir, "payload.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := 0; off < size; off += len(buf) {
		chunk := buf[:min(len(buf), size-off)]
		for i := range chunk {
			n := off + i
			chunk[i] = byte(n*7 + n>>12 + n>>20)
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameFile fails the test unless the files at a and b hold the same bytes.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			t.Fatalf("%s and %s differ in the MiB at offset %d (%d and %d bytes read)", a, b, off, na, nb)
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			if eb != ea {
				t.Fatalf("%s ends at %d, %s does not", a, off+int64(na), b)
			}
			return
		}
		if ea != nil || eb != nil {
			t.Fatalf("reading %s, %s: %v, %v", a, b, ea, eb)
		}
		off += int64(na)
	}
}

// A 64 MiB file published with pub -file reaches two sub -o byte for byte,
// through a memfd the broker passes on without reading: the broker's peak
// memory stays under the payload's size, and it holds no descriptor once
// both have it.
func TestCLIPubFileToTwoSubscribers(t *testing.T) {
	const size = 64 << 20
	b := startBusd(t)
	tmp := t.TempDir()
	src := writePattern(t, tmp, size)
	before := b.FDs(t)
	var dirs []string
	var subs []*proc
	for i := range 2 {
		dir := filepath.Join(tmp, fmt.Sprintf("out%d", i), "new") // made by sub
		dirs = append(dirs, dir)
		subs = append(subs, b.startSub(t, "-o", dir, "-count", "1", "big.>"))
	}
	b.pub(t, "", "-file", src, "big.file")
	for i, s := range subs {
		out := s.wait(t) // -count 1: it exits once the file is written
		got := filepath.Join(dirs[i], "000001-big.file")
		if want := got + " big.file 67108864B pid="; !strings.HasPrefix(out, want) {
			t.Errorf("subscriber %d printed %q; want a line starting %q", i, out, want)
		}
		sameFile(t, src, got)
	}
	if peak := b.PeakRSS(t); peak >= size {
		t.Errorf("busd's peak resident memory (VmHWM) is %d MiB; want under the payload's %d MiB", peak>>20, size>>20)
	}
	b.WaitFDs(t, before)
}

// sub -o names its files by arrival and topic, takes inline payloads as
// well, and pub -file sends a small file inline, and reads a pipe (a
// large payload from it goes in a memfd after the bytes read first).
func TestCLISubOutOrderAndTopics(t *testing.T) {
	b := startBusd(t)
	tmp := t.TempDir()
	small := filepath.Join(tmp, "small.txt")
	if err := os.WriteFile(small, []byte("small file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "out")
	sub := b.startSub(t, "-o", dir, "-count", "4", "a.>")
	b.pub(t, "", "a.one", "first")
	b.pub(t, "", "-file", small, "a.two")
	b.pub(t, "", "a.three.x", "")
	piped := strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB: over the threshold for a memfd
	b.pub(t, piped, "-file", "/dev/stdin", "a.pipe")
	out := sub.wait(t)
	for _, f := range []struct{ name, content string }{
		{"000001-a.one", "first"}, {"000002-a.two", "small file\n"}, {"000003-a.three.x", ""}, {"000004-a.pipe", piped},
	} {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil || string(got) != f.content {
			t.Errorf("%s: %d bytes, %v; want %d", f.name, len(got), err, len(f.content))
		}
		if !strings.Contains(out, filepath.Join(dir, f.name)+" "+f.name[7:]+" ") {
			t.Errorf("output does not name %s:\n%s", f.name, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("%d entries in %s; want the 4 payloads and nothing else", len(ents), dir)
	}

	// A second run in the same directory goes on from the highest number.
	sub = b.startSub(t, "-o", dir, "-count", "1", "a.>")
	b.pub(t, "", "a.one", "again")
	sub.wait(t)
	if got, err := os.ReadFile(filepath.Join(dir, "000005-a.one")); err != nil || string(got) != "again" {
		t.Errorf("second run: 000005-a.one: %q, %v; want %q", got, err, "again")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "000001-a.one")); string(got) != "first" {
		t.Errorf("second run replaced 000001-a.one: %q", got)
	}
}

// pub -file fails clearly: a missing file, DATA or -json with it, and a
// file over the broker's limit, naming the limit.
func TestCLIPubFileErrors(t *testing.T) {
	b := startBusdWith(t, bustest.Options{Args: []string{"-max-fd-payload", "1048576", "-max-payload", "1048576"}})
	tmp := t.TempDir()
	big := writePattern(t, tmp, 1<<20+1)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "-file", filepath.Join(tmp, "nonexistent"), "t"}, "no such file"},
		{[]string{"pub", "-file", big, "t", "data"}, "give TOPIC alone"},
		{[]string{"pub", "-file", big, "-json", "t"}, "does not go with -json"},
		{[]string{"pub", "-file", tmp, "t"}, "is a directory"},
		{[]string{"pub", "-file", big, "t"}, "1048577 bytes; the bus takes at most 1048576 (max_fd_payload)"},
		{[]string{"pub", "-retain", "-file", big, "t"}, "1048577 bytes; the bus takes at most 1048576 (max_payload; a retained value goes inline)"},
		{[]string{"sub", "-o", tmp, "-raw", "t"}, "-o writes the payloads to files"},
	} {
		out, err := b.bus(tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("bus %q: err %v, output %q; want failure saying %q", tc.args, err, out, tc.want)
		}
	}

	// A broker that takes no payloads in a memfd gets them inline, up to
	// its max_payload.
	b = startBusdWith(t, bustest.Options{Args: []string{"-max-fd-payload", "0", "-max-payload", "1048576"}})
	dir := filepath.Join(tmp, "out")
	sub := b.startSub(t, "-o", dir, "-count", "1", "t")
	fits := writePattern(t, t.TempDir(), 1<<20)
	b.pub(t, "", "-file", fits, "t")
	sub.wait(t)
	sameFile(t, fits, filepath.Join(dir, "000001-t"))
	out, err := b.bus("pub", "-file", big, "t").CombinedOutput()
	if want := "the bus takes at most 1048576 (max_payload; the bus takes no payloads in a memfd (max_fd_payload 0))"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("bus pub -file of 1 MiB + 1 to a bus without memfd payloads: err %v, output %q; want failure saying %q", err, out, want)
	}
}
