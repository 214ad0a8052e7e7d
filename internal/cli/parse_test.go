package cli

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFlags is a flag set like a bus command's: a bool, a string, a
// duration and an int.
type testFlags struct {
	fs      *flag.FlagSet
	raw     bool
	dir     string
	timeout time.Duration
	count   int
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: flag.NewFlagSet("bus sub", flag.ContinueOnError)}
	f.fs.BoolVar(&f.raw, "raw", false, "")
	f.fs.StringVar(&f.dir, "dir", "", "")
	f.fs.DurationVar(&f.timeout, "timeout", time.Second, "")
	f.fs.IntVar(&f.count, "count", 0, "")
	return f
}

func TestParseTakesFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		pos   []string
		raw   bool
		dir   string
		count int
	}{
		{[]string{"-count", "1", "-dir", "D", "x"}, []string{"x"}, false, "D", 1},
		{[]string{"x", "-count", "1"}, []string{"x"}, false, "", 1},
		{[]string{"x", "-raw", "y", "--dir=D"}, []string{"x", "y"}, true, "D", 0},
		{[]string{"-raw", "x", "--", "-count", "1"}, []string{"x", "-count", "1"}, true, "", 0},
		{[]string{"--", "-x"}, []string{"-x"}, false, "", 0},
		{[]string{"-dir", "-raw", "x"}, []string{"x"}, false, "-raw", 0}, // a value may start with '-'
		{[]string{"-", "-raw=false"}, []string{"-"}, false, "", 0},
	} {
		f := newTestFlags()
		pos, err := Parse(f.fs, tc.args)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.args, err)
			continue
		}
		if !slices.Equal(pos, tc.pos) || f.raw != tc.raw || f.dir != tc.dir || f.count != tc.count {
			t.Errorf("Parse(%q) = %q, raw %v, dir %q, count %d; want %q, %v, %q, %d",
				tc.args, pos, f.raw, f.dir, f.count, tc.pos, tc.raw, tc.dir, tc.count)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the message; "" for flag.ErrHelp
	}{
		{[]string{"-h"}, ""},
		{[]string{"x", "--help"}, ""},
		{[]string{"-help"}, ""},
		{[]string{"-frob", "x"}, "-frob is not a flag of bus sub"},
		{[]string{"x", "-5"}, "goes after --, as in: bus sub [flags] -- ARGS"},
		{[]string{"-timeout", "1"}, `invalid value "1" for flag -timeout: a duration needs a unit: 1s, or 1ms`},
		{[]string{"-timeout", "0.5"}, "0.5s"},
		{[]string{"-timeout", "soon"}, "not a duration: write it as 5s"},
		{[]string{"-count", "many"}, `invalid value "many" for flag -count`},
		{[]string{"x", "-count"}, "flag needs an argument: -count"},
	} {
		_, err := Parse(newTestFlags().fs, tc.args)
		if tc.want == "" {
			if !errors.Is(err, flag.ErrHelp) || ExitCode(err) != ExitOK {
				t.Errorf("Parse(%q) = %v; want flag.ErrHelp, exit 0", tc.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitUsage {
			t.Errorf("Parse(%q) = %v (exit %d); want a usage error (exit 2) saying %q", tc.args, err, ExitCode(err), tc.want)
		}
	}
}

// After parsing, flag's help still calls a duration flag a duration.
func TestParseLeavesDurationFlagsAsTheyWere(t *testing.T) {
	f := newTestFlags()
	if _, err := Parse(f.fs, []string{"-timeout", "2s"}); err != nil || f.timeout != 2*time.Second {
		t.Fatalf("Parse: %v, timeout %v", err, f.timeout)
	}
	var help strings.Builder
	f.fs.SetOutput(&help)
	f.fs.PrintDefaults()
	if !strings.Contains(help.String(), "-timeout duration") {
		t.Errorf("help after Parse:\n%s\nwant -timeout shown as a duration", help.String())
	}
}

func TestLeadingStopsAtTheCommand(t *testing.T) {
	f := newTestFlags()
	flags, rest, err := Leading(f.fs, []string{"-dir", "D", "--raw", "sub", "-count", "1", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(flags, []string{"-dir", "D", "--raw"}) || !slices.Equal(rest, []string{"sub", "-count", "1", "x"}) || f.dir != "D" || !f.raw {
		t.Errorf("Leading = %q, %q (dir %q, raw %v)", flags, rest, f.dir, f.raw)
	}
	if _, _, err := Leading(newTestFlags().fs, []string{"-queue", "g", "sub"}); ExitCode(err) != ExitUsage {
		t.Errorf("Leading with a flag the set lacks: %v; want a usage error", err)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{flag.ErrHelp, ExitOK},
		{Usagef("bad"), ExitUsage},
		{errors.Join(errors.New("context"), Usagef("bad")), ExitUsage},
		{errors.New("failed"), ExitError},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d; want %d", tc.err, got, tc.want)
		}
	}
}
