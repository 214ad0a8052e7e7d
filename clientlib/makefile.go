package clientlib

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxValueLen bounds a value File.ReadValue accepts: a length prefix is
// checked before anything is allocated for it, so a corrupt or hostile
// stream cannot make the reader allocate gigabytes.
const MaxValueLen = 64 << 20

// File is a buffered reader and writer over a byte stream, with line and
// value framing, in the spirit of Python's socket.makefile(): wrap a
// StreamConn (or a TopicReader and a TopicWriter, or any reader and
// writer) and exchange lines or typed values. Writes are buffered until
// Flush. A File is for one reading and one writing goroutine at a time.
type File struct {
	r *bufio.Reader
	w *bufio.Writer
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
// without a newline is returned as a line; after it, io.EOF.
func (f *File) ReadLine() (string, error) {
	if f.r == nil {
		return "", errNoReader
	}
	line, err := f.r.ReadString('\n')
	switch {
	case err == io.EOF && line != "":
		err = nil
	case err != nil:
		return "", err
	}
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
		if n > 0 && line[n-1] == '\r' {
			n--
		}
	}
	return line[:n], nil
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
// that ends inside a value gives io.ErrUnexpectedEOF.
func (f *File) ReadValue(v any) error {
	if f.r == nil {
		return errNoReader
	}
	var prefix [4]byte
	if _, err := io.ReadFull(f.r, prefix[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n > MaxValueLen {
		return fmt.Errorf("%w: value of %d bytes announced; a File takes at most %d", ErrDecode, n, MaxValueLen)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return DecodeValue(b, v)
}
