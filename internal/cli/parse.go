// Package cli is how bus and busd read their command lines: the standard
// library's flag package, with flags taken wherever people put them, help
// on stdout, and one meaning for each exit status.
//
// flag stops at the first argument that is not a flag, so `bus sub x
// -count 1` would subscribe to "-count" and "1"; [Parse] takes flags
// before, between and after the positional arguments instead, up to "--".
// flag says "parse error" for `-timeout 1` or `-count x`; Parse makes every
// duration flag suggest the unit, and every number flag say what it wants.
// No flag library is needed for either.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Exit statuses of bus and busd.
const (
	ExitOK    = 0 // done, or help asked for
	ExitError = 1 // the command ran and failed
	ExitUsage = 2 // the command line cannot be run as written
)

// ErrNotAFlag is in the error of a flag the flag set does not define.
var ErrNotAFlag = errors.New("not a flag")

// UsageError is a command line that cannot be run as written: an unknown
// flag or command, a bad flag value, the wrong number of arguments.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// ExitCode is the exit status for what a command returned: [ExitOK] for nil
// and for flag.ErrHelp (help was asked for, and printed), [ExitUsage] for a
// [*UsageError], and [ExitError] for any other error.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(*UsageError)):
		return ExitUsage
	}
	return ExitError
}

// Parse sets fs's flags from args, wherever they are among the positional
// arguments, and returns those in order. "--" ends the flags: what follows
// is positional even if it starts with '-'. -h, -help and --help, unless fs
// defines them, return flag.ErrHelp; any other failure is a *UsageError.
// fs prints nothing: its errors are returned, and help is the caller's.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	flags, pos, err := split(fs, args, false)
	if err != nil {
		return nil, err
	}
	return pos, parseFlags(fs, flags)
}

// Leading sets fs's flags from the flags at the start of args, up to the
// first positional argument (a command name), and returns the flags it
// took and the rest of args from that argument on. Errors are as Parse's.
func Leading(fs *flag.FlagSet, args []string) (flags, rest []string, err error) {
	flags, rest, err = split(fs, args, true)
	if err != nil {
		return nil, nil, err
	}
	return flags, rest, parseFlags(fs, flags)
}

func parseFlags(fs *flag.FlagSet, flags []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	defer hintValues(fs)()
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{err}
	}
	return nil
}

// split sorts args into flags (each with its value) and positional
// arguments; with leading it stops at the first positional one and returns
// it and all after it as positional. Whether a flag takes the next argument
// as its value depends on whether it is a bool flag, as in flag.Parse.
func split(fs *flag.FlagSet, args []string, leading bool) (flags, pos []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			if leading {
				return flags, args[i:], nil
			}
			pos = append(pos, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		f := fs.Lookup(name)
		switch {
		case f == nil && (name == "h" || name == "help"):
			return nil, nil, flag.ErrHelp
		case f == nil && len(pos) > 0:
			return nil, nil, Usagef("%s is %w of %s; an argument that starts with '-' goes after --, as in: %s [flags] -- ARGS", a, ErrNotAFlag, fs.Name(), fs.Name())
		case f == nil:
			return nil, nil, Usagef("%s is %w of %s", a, ErrNotAFlag, fs.Name())
		}
		flags = append(flags, a)
		if !hasValue && !isBool(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, pos, nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// hintValues makes every duration and number flag of fs say what a value
// should look like, where flag would say only "parse error", until the
// function it returns puts the flags back: flag's help names a flag's
// type by its own Value type.
func hintValues(fs *flag.FlagSet) (restore func()) {
	type original struct {
		f *flag.Flag
		v flag.Value
	}
	var hinted []original
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		switch g.Get().(type) {
		case time.Duration:
			hinted = append(hinted, original{f, f.Value})
			f.Value = durationHint{g}
		case int, int64, uint, uint64:
			hinted = append(hinted, original{f, f.Value})
			f.Value = numberHint{g}
		}
	})
	return func() {
		for _, h := range hinted {
			h.f.Value = h.v
		}
	}
}

type durationHint struct{ flag.Getter }

func (d durationHint) Set(s string) error {
	if err := d.Getter.Set(s); err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("a duration needs a unit: %ss, or %sms, %sm, %sh", s, s, s, s)
		}
		return errors.New("not a duration: write it as 5s, 500ms, 1m30s or 2h")
	}
	return nil
}

type numberHint struct{ flag.Getter }

func (n numberHint) Set(s string) error {
	err := n.Getter.Set(s)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, strconv.ErrRange) || strings.Contains(err.Error(), "out of range"):
		return errors.New("value out of range")
	}
	switch n.Get().(type) {
	case uint, uint64:
		return errors.New("not a whole number of 0 or more: write it as 10")
	}
	return errors.New("not a whole number: write it as 10")
}
