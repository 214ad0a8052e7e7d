package clientlib

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// MaxValueLen bounds a value File.ReadValue accepts; a longer length prefix
// is refused before anything is read for it.
const MaxValueLen = 64 << 20

// MaxLineLen bounds a line File.ReadLine accepts, so that a peer that
// never sends a newline cannot make the reader hold gigabytes.
const MaxLineLen = 1 << 20

// File is a buffered reader and writer over a byte stream, with line and
// value framing, in the spirit of Python's socket.makefile(): wrap a
// StreamConn (or a TopicReader and a TopicWriter, or any reader and
// writer) and exchange lines or typed values. Writes are buffered until
// Flush. A File is for one reading and one writing goroutine at a time.
type File struct {
	r *bufio.Reader
	w *bufio.Writer

	line     []byte // what ReadLine has read of the current line
	skipping bool   // ReadLine is skipping the rest of an overlong line
	inValue  bool   // ReadValue has read a length prefix ...
	need     int    // ... announcing need bytes,
	val      []byte // of which it has read these
}

// MakeFile returns a File reading from r and writing to w; either may be
// nil for a File that only writes or only reads.
func MakeFile(r io.Reader, w io.Writer) *File {
	f := &File{}
	if r != nil {
		f.r = bufio.NewReaderSize(r, 64<<10)
	}
	if w != nil {
		f.w = bufio.NewWriterSize(w, 64<<10)
	}
	return f
}

var (
	errNoReader = errors.New("bus: File has no reader")
	errNoWriter = errors.New("bus: File has no writer")
)

// Read reads bytes, as io.Reader.
func (f *File) Read(p []byte) (int, error) {
	if f.r == nil {
		return 0, errNoReader
	}
	return f.r.Read(p)
}

// Write buffers p, as io.Writer.
func (f *File) Write(p []byte) (int, error) {
	if f.w == nil {
		return 0, errNoWriter
	}
	return f.w.Write(p)
}

// Flush sends what is buffered.
func (f *File) Flush() error {
	if f.w == nil {
		return errNoWriter
	}
	return f.w.Flush()
}

// ReadLine returns the next line without its "\n" (or "\r\n"). A last line
// without a newline is returned as a line; after it, io.EOF. A line longer
// than MaxLineLen fails with bufio.ErrTooLong, and the rest of it is
// skipped: the next ReadLine returns the line after it. After any other
// error, a deadline's for instance, what was read of the line is kept, and
// the next ReadLine goes on from there.
func (f *File) ReadLine() (string, error) {
	if f.r == nil {
		return "", errNoReader
	}
	for {
		chunk, err := f.r.ReadSlice('\n')
		ended := err == nil || err == io.EOF && len(f.line)+len(chunk) > 0
		if f.skipping {
			f.skipping = !ended || err != nil // an overlong line's rest, up to its newline
			if err == nil || err == bufio.ErrBufferFull {
				continue
			}
			return "", err
		}
		f.line = append(f.line, chunk...)
		line := f.line
		if ended {
			line = trimNewline(line)
		} else if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1] // perhaps the start of a "\r\n"
		}
		if len(line) > MaxLineLen {
			f.line, f.skipping = nil, !ended
			return "", fmt.Errorf("bus: a line longer than %d bytes: %w", MaxLineLen, bufio.ErrTooLong)
		}
		switch {
		case ended:
			s := string(line)
			f.line = f.line[:0]
			if cap(f.line) > 64<<10 {
				f.line = nil // a rare long line does not stay allocated
			}
			return s, nil
		case err == bufio.ErrBufferFull: // a long line: read on
		default:
			return "", err
		}
	}
}

// trimNewline removes a line's "\n" or "\r\n".
func trimNewline(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// WriteLine buffers s and a "\n".
func (f *File) WriteLine(s string) error {
	if f.w == nil {
		return errNoWriter
	}
	f.w.WriteString(s)
	return f.w.WriteByte('\n')
}

// WriteValue buffers v as a value: a 4-byte big-endian length, then v in
// msgpack (EncodeValue).
func (f *File) WriteValue(v any) error {
	if f.w == nil {
		return errNoWriter
	}
	b, err := EncodeValue(v)
	if err != nil {
		return err
	}
	if len(b) > MaxValueLen {
		return fmt.Errorf("%w: value of %d bytes; a File takes at most %d", ErrEncode, len(b), MaxValueLen)
	}
	f.w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	_, err = f.w.Write(b)
	return err
}

// ReadValue reads the next value WriteValue wrote into v, a pointer, as
// DecodeValue does. At the end of the stream it returns io.EOF; a stream
// that ends inside a value gives io.ErrUnexpectedEOF. After any other
// error, a deadline's for instance, what was read of the value is kept,
// and the next ReadValue goes on from there. Memory is taken as the bytes
// arrive, not for the length announced.
func (f *File) ReadValue(v any) error {
	if f.r == nil {
		return errNoReader
	}
	if !f.inValue {
		prefix, err := f.r.Peek(4) // nothing is consumed until all four are there
		if err != nil {
			if err == io.EOF && len(prefix) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n := binary.BigEndian.Uint32(prefix)
		if n > MaxValueLen {
			return fmt.Errorf("%w: value of %d bytes announced; a File takes at most %d", ErrDecode, n, MaxValueLen)
		}
		f.r.Discard(4)
		f.inValue, f.need, f.val = true, int(n), f.val[:0]
	}
	for len(f.val) < f.need {
		step := min(f.need-len(f.val), 64<<10)
		f.val = slices.Grow(f.val, step)
		n, err := f.r.Read(f.val[len(f.val) : len(f.val)+step])
		f.val = f.val[:len(f.val)+n]
		if err == io.EOF && len(f.val) == f.need {
			break // the last bytes came with the end: the value is whole
		}
		if err != nil {
			if err == io.EOF {
				f.inValue = false
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	f.inValue = false
	err := DecodeValue(f.val, v)
	if cap(f.val) > 64<<10 {
		f.val = nil // a rare large value does not stay allocated
	}
	return err
}
