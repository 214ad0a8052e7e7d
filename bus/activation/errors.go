package activation

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrBadFile matches every error about a service file's contents: a
	// *FileError wraps it.
	ErrBadFile = errors.New("activation: bad service file")
	// ErrUntrustedDir is returned for a services directory, or a service
	// file, that a user other than busd's own (or root) could write to:
	// whoever can write there can run commands as busd's user.
	ErrUntrustedDir = errors.New("activation: untrusted services directory")
	// ErrTooManyStarting is what failed is called with when
	// Config.MaxStarting services are already starting.
	ErrTooManyStarting = errors.New("too many services starting at once")
	// ErrClosed is returned by Reload after Close.
	ErrClosed = errors.New("activation: activator closed")
)

// FileError is a service file that cannot be used: the file, the line
// (0 for the file as a whole) and what is wrong with it. It matches
// ErrBadFile, and ErrUntrustedDir for a file others may write to.
type FileError struct {
	Path string
	Line int
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

// Unwrap returns ErrBadFile and the cause.
func (e *FileError) Unwrap() []error { return []error{ErrBadFile, e.Err} }

// ErrExitedWithoutName is what failed is called with when a service's
// process exits with status 0 before it took its name.
var ErrExitedWithoutName = errors.New("exited with status 0 without taking its name")
