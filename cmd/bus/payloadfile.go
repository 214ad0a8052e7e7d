package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock/memfd"
	"golang.org/x/sys/unix"
)

// filePayload is the payload of `bus pub -file`: the file's bytes in
// Data, or, when large, in PayloadFile, a sealed memfd the kernel filled
// from the file (copy_file_range), so that a file of any size up to the
// broker's limit passes through no memory of bus's.
type filePayload struct {
	data []byte
	file *os.File // a sealed memfd, or nil
}

func (p *filePayload) close() {
	if p.file != nil {
		p.file.Close()
	}
}

// readFilePayload reads path as one payload for the bus c is connected
// to. It goes inline (Data) when it is no larger than clientlib's
// threshold for memfds and the broker's max_payload, or must (inline:
// a retained value, or a broker that takes no memfd payloads); else in a
// memfd of at most the broker's max_fd_payload. Errors name the file and,
// when it is too large, the limit it is over.
func readFilePayload(path string, c *clientlib.Conn, inline bool) (*filePayload, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("-file: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("-file %s: is a directory", path)
	}
	maxInline, maxFD := int64(c.Limits().MaxPayload), int64(c.MaxFDPayload())
	known := st.Mode().IsRegular() // else a pipe or a device: its size is found by reading
	if inline || maxFD == 0 || (known && st.Size() <= min(maxInline, clientlib.DefaultLargePayloadThreshold)) {
		why := "max_payload"
		switch {
		case inline:
			why += "; a retained value goes inline"
		case maxFD == 0:
			why += "; the bus takes no payloads in a memfd (max_fd_payload 0)"
		}
		if known && st.Size() > maxInline {
			return nil, fmt.Errorf("-file %s: %w: %d bytes; the bus takes at most %d (%s)", path, clientlib.ErrTooLarge, st.Size(), maxInline, why)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxInline+1))
		if err != nil {
			return nil, fmt.Errorf("-file: %w", err)
		}
		if int64(len(data)) > maxInline {
			return nil, fmt.Errorf("-file %s: %w: more than %d bytes; the bus takes at most %d (%s)", path, clientlib.ErrTooLarge, maxInline, maxInline, why)
		}
		return &filePayload{data: data}, nil
	}
	if known && st.Size() > maxFD {
		return nil, fmt.Errorf("-file %s: %w: %d bytes; the bus takes at most %d (max_fd_payload)", path, clientlib.ErrTooLarge, st.Size(), maxFD)
	}
	var r io.Reader = f // a regular file: the kernel copies it into the memfd
	if !known {
		// A pipe or a device: a small payload goes inline as from a
		// regular file; a large one into the memfd after what was read.
		small := min(maxInline, clientlib.DefaultLargePayloadThreshold)
		head, err := io.ReadAll(io.LimitReader(f, small+1))
		if err != nil {
			return nil, fmt.Errorf("-file: %w", err)
		}
		if int64(len(head)) <= small {
			return &filePayload{data: head}, nil
		}
		r = io.MultiReader(bytes.NewReader(head), f)
	}
	mf, err := memfd.FromReader(r, maxFD)
	if errors.Is(err, memfd.ErrTooLarge) {
		return nil, fmt.Errorf("-file %s: %w: more than %d bytes; the bus takes at most %d (max_fd_payload)", path, clientlib.ErrTooLarge, maxFD, maxFD)
	}
	if err != nil {
		return nil, fmt.Errorf("-file %s: %w", path, err)
	}
	return &filePayload{file: mf}, nil
}

// payloadWriter writes each payload `bus sub -o DIR` receives to a file
// of its own in DIR, named by its order and its topic (000001-TOPIC, the
// topic cut short if too long for a file name: fileName), so that ls
// lists them in the order they came. Numbers go on from the
// highest already in DIR, so that a second run adds to the first's files
// and never replaces one.
type payloadWriter struct {
	dir string
	n   int
}

// newPayloadWriter makes dir if it does not exist.
func newPayloadWriter(dir string) (*payloadWriter, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("-o: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("-o: %w", err)
	}
	w := &payloadWriter{dir: dir}
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "-")
		if n, err := strconv.Atoi(num); ok && err == nil && len(num) >= 6 {
			w.n = max(w.n, n)
		}
	}
	return w, nil
}

// write writes m's payload and returns the file's path. A payload that
// came in a memfd (m.PayloadFile, with clientlib.PayloadFiles) is copied
// by the kernel, never through bus's memory. The file is written under a
// hidden name and renamed once whole, so that a file with the final name
// is always complete.
//
// DIR may be writable by others (-o takes a directory as it finds it, one
// another user made in /tmp, say), so nothing there is trusted: the
// hidden file is a new one of bus's own, created with O_EXCL (which
// follows no symlink) under a name nobody can guess, and the rename
// replaces nothing (RENAME_NOREPLACE): a name taken meanwhile makes the
// payload take the next number.
func (w *payloadWriter) write(m *clientlib.Msg) (string, error) {
	f, part, err := createPart(w.dir, fmt.Sprintf("%06d-%s", w.n+1, fileSafe(m.Topic)))
	if err != nil {
		return "", fmt.Errorf("-o: %w", err)
	}
	if m.PayloadFile != nil {
		err = copyAt(f, m.PayloadFile)
	} else {
		_, err = f.Write(m.Data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var path string
	for err == nil {
		w.n++
		path = filepath.Join(w.dir, fileName(w.n, m.Topic))
		if err = renameNoReplace(part, path); errors.Is(err, os.ErrExist) {
			err = nil
			continue
		}
		break
	}
	if err != nil {
		os.Remove(part)
		return "", fmt.Errorf("-o: payload of a message on %s: %w", m.Topic, err)
	}
	return path, nil
}

// createPart creates a new hidden file in dir to write a payload into,
// its name made of a random number and the start of name, and returns it
// with its path.
func createPart(dir, name string) (*os.File, string, error) {
	if len(name) > 64 {
		name = name[:64]
	}
	name = strings.ToValidUTF8(name, "_")
	for {
		part := filepath.Join(dir, fmt.Sprintf(".%s.%016x.part", name, rand.Uint64()))
		f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, os.ErrExist) {
			continue // very unlikely: another name
		}
		return f, part, err
	}
}

// renameNoReplace renames from to to unless to exists (an error matching
// os.ErrExist). Where the file system does not take RENAME_NOREPLACE,
// link(2) and unlink(2) do the same.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL && err != unix.ENOSYS {
		if err != nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
		}
		return nil
	}
	if err := os.Link(from, to); err != nil {
		return err
	}
	return os.Remove(from)
}

// copyAt copies all of src to dst from src's offset 0 without moving
// src's offset, which every receiver of the descriptor shares with the
// sender: sendfile(2) with an offset, done by the kernel in its page
// cache; if the kernel refuses it for this pair of files, pread and
// write through a small buffer.
func copyAt(dst, src *os.File) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	var off int64
	for off < st.Size() {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, int(min(st.Size()-off, 1<<30)))
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil || n == 0 {
			if off == 0 && (err == unix.EINVAL || err == unix.ENOSYS) {
				_, err = io.Copy(dst, io.NewSectionReader(src, 0, st.Size()))
				return err
			}
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return os.NewSyscallError("sendfile", err)
		}
	}
	return nil
}

// maxName is the longest file name (NAME_MAX on Linux), in bytes.
const maxName = 255

// fileName is the name of the nth payload's file, on topic: "000001-"
// and the topic made safe (fileSafe), cut short, at a character's
// boundary, to fit in maxName bytes. A topic may be topics.MaxLen (1024) bytes: left whole, a
// long topic's file could not be made, and anyone who may publish on a
// topic the subscriber's pattern matches could end `bus sub -o`.
func fileName(n int, topic string) string {
	prefix := fmt.Sprintf("%06d-", n)
	t := fileSafe(topic)
	room := maxName - len(prefix)
	if len(t) > room {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(t[cut]) {
			cut--
		}
		t = t[:cut]
	}
	return prefix + t
}

// fileSafe makes a topic a file name: a topic cannot hold '/', but '>'
// and '*' of the patterns never reach a message's topic either, so only
// the odd character a shell would trip on is replaced.
func fileSafe(topic string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r < ' ' {
			return '_'
		}
		return r
	}, topic)
}
