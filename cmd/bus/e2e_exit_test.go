package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/busd/busd/internal/cli"
)

// A command line that cannot be run exits 2, with one line saying what is
// wrong, prefixed once, and one saying where to read how to write it.
func TestCLIUsageErrorsExit2(t *testing.T) {
	b := startBusd(t)
	for _, tc := range []struct {
		bin     string
		args    []string
		want    string
		notWant string // a hint that does not belong
	}{
		{"bus", nil, "no command given", ""},
		{"bus", []string{"frob"}, `unknown command "frob"`, ""},
		{"bus", []string{"sub"}, "usage: bus sub", ""},
		{"bus", []string{"pub", "a", "b", "c"}, "usage: bus pub", ""},
		{"bus", []string{"-count", "1", "sub", "x"}, "-count is not a flag of bus: before the command go only the connection flags", ""},
		{"bus", []string{"sub", "-cuont", "1", "x"}, "-cuont is not a flag of bus sub", ""},
		{"bus", []string{"pub", "temp", "-5"}, "goes after --, as in: bus pub [flags] -- ARGS", ""},
		{"bus", []string{"req", "-timeout", "1", "x"}, `invalid value "1" for flag -timeout: a duration needs a unit: 1s`, ""},
		{"bus", []string{"whois", "3", "-timeout", "2"}, "a duration needs a unit: 2s", ""},
		{"bus", []string{"req", "-timeout", "0s", "x"}, "must be positive", ""},
		{"bus", []string{"sub", "-json", "-raw", "x"}, "does not go with -raw", ""},
		{"bus", []string{"stream", "sideways", "x"}, `unknown stream mode "sideways"`, "bus stream sideways"},
		{"bus", []string{"help", "nope"}, `no command "nope"`, ""},
		{"bus", []string{"completion", "tcsh"}, "usage: bus completion bash|zsh|fish", ""},
		{"bus", []string{"pub", "-trust", "root", "a", "x"}, `"root" is not a numeric uid`, ""},
		{"busd", []string{"-write-timeout", "1"}, "a duration needs a unit: 1s", ""},
		{"busd", []string{"extra"}, "busd takes only flags", ""},
		{"busd", []string{"-mode", "999"}, "not an octal permission", ""},
		{"bus", []string{"-trust", "abc", "pub", "x", "y"}, `"abc" is not a numeric uid`, "before the command go only"},
		{"bus", []string{"-dir"}, "flag needs an argument: -dir", "before the command go only"},
		{"bus", []string{"sub", "-count", "-1", "x"}, "-count -1: must not be negative", ""},
		{"bus", []string{"sub", "-count", "abc", "x"}, `invalid value "abc" for flag -count: not a whole number: write it as 10`, "parse error"},
		{"bus", []string{"version", "extra"}, "usage: bus version", ""},
		{"busd", []string{"-log-level", "bogus"}, `-log-level "bogus": give debug, info, warn or error`, "slog"},
		{"busd", []string{"-max-payload", "4294967297"}, "-max-payload 4294967297: give a size from 1 to 4294967295", ""},
		{"busd", []string{"-max-conns", "0"}, "-max-conns 0: give a positive number", "MaxConns"},
		{"busd", []string{"-max-pending", "-5"}, "-max-pending -5: give a positive number", "MaxPending"},
		{"busd", []string{"-policy", "/nonexistent/policy"}, "-policy /nonexistent/policy: no such file", "policy: policy"},
		{"busd", []string{"-max-memory", "1"}, "-max-memory 1 is too small to serve connections", "MaxMemory"},
	} {
		cmd := exec.CommandContext(b.ctx, filepath.Join(binDir, tc.bin), tc.args...)
		cmd.Env = b.Env()
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
		last := lines[len(lines)-1]
		first := lines[max(len(lines)-2, 0)] // bus alone prints the usage first
		if exitCode(err) != cli.ExitUsage || out.Len() > 0 ||
			!strings.HasPrefix(first, tc.bin+": ") || strings.HasPrefix(first, tc.bin+": "+tc.bin+": ") ||
			!strings.Contains(first, tc.want) || !strings.HasPrefix(last, "run '"+tc.bin+" ") ||
			strings.HasSuffix(first, " ") || tc.notWant != "" && strings.Contains(errOut.String(), tc.notWant) {
			t.Errorf("%s %q: %v, stdout %q, stderr:\n%s\nwant exit 2, %q after one %q and no %q, then where to read more",
				tc.bin, tc.args, err, out.String(), errOut.String(), tc.want, tc.bin+": ", tc.notWant)
		}
	}
}

// Errors of a command that ran are one line each, "bus: " once, and show
// what they are about.
func TestCLIErrorLines(t *testing.T) {
	b := startBusd(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "$SYS.x", "a"}, `bus: reserved topic: topic "$SYS.x": topics starting with "$SYS." belong to the broker`},
		{[]string{"pub", "a.b\x01", "x"}, `bus: invalid topic: topic "a.b\x01": token 2 has a forbidden character U+0001 '\x01'`},
		{[]string{"sub", "a\tb"}, `token 1 has a forbidden character U+0009 '\t'`},
		{[]string{"req", "nobody", "x"}, `bus: no responders for "nobody"`},
		{[]string{"pub", "-dir", empty, "a", "x"}, "bus: no bus is up at " + filepath.Join(empty, "default.sock") + " (no socket there): start busd for it"},
	} {
		_, errOut, err := b.run("", tc.args...)
		if exitCode(err) != cli.ExitError || strings.Count(errOut, "\n") != 1 ||
			strings.Count(errOut, "bus: ") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("bus %q: %v, stderr %q; want exit 1 and one line %q", tc.args, err, errOut, tc.want)
		}
	}
}

// The error that ends a command's connection is said once, when it exits,
// not also as it happens.
func TestCLIBrokerShutdownSaidOnce(t *testing.T) {
	b := startBusd(t)
	cmd, _, stderr := b.startPiped(t, "sub", "-no-reconnect", "x")
	expectLine(t, stderr, "bus: subscribed")
	b.Stop(t)
	var said []string
	for l := range stderr {
		said = append(said, l)
	}
	if err := cmd.Wait(); exitCode(err) != cli.ExitError {
		t.Errorf("bus sub -no-reconnect after busd stopped: %v; want exit 1", err)
	}
	want := "bus: the connection to the bus ended: the broker is shutting down"
	if len(said) != 1 || said[0] != want {
		t.Errorf("bus sub said %q; want only %q", said, want)
	}
}
