package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/busd/busd/internal/cli"
)

// elsewhere returns `bus ARGS` run with an environment that names another,
// empty bus directory: only the -dir among ARGS can lead it to b.
func (b *busd) elsewhere(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(b.ctx, filepath.Join(binDir, "bus"), args...)
	cmd.Env = append(os.Environ(), "BUSD_DIR="+t.TempDir(), "BUSD_SOCKET=")
	return cmd
}

// The connection flags work before the command and among its flags, and
// a command's flags after its arguments.
func TestCLIFlagsBeforeOrAfterTheCommand(t *testing.T) {
	b := startBusd(t)
	socket := filepath.Join(b.Dir, "default.sock")
	for _, args := range [][]string{
		{"-dir", b.Dir, "sub", "-count", "1", "x"},
		{"sub", "-count", "1", "-dir", b.Dir, "x"},
		{"sub", "x", "-count", "1", "-dir", b.Dir},
		{"--dir=" + b.Dir, "sub", "x", "--count=1"},
	} {
		cmd := b.elsewhere(t, args...)
		stdout, stderr := startLines(t, cmd)
		if l := expectLine(t, stderr, "bus: "); l != `bus: subscribed to ["x"] on `+socket {
			t.Fatalf("bus %q: %q; want it subscribed to x alone on %s", args, l, socket)
		}
		if errOut, err := b.elsewhere(t, "pub", "x", "hello", "-dir", b.Dir).CombinedOutput(); err != nil {
			t.Fatalf("bus pub x hello -dir D: %v\n%s", err, errOut)
		}
		expectLine(t, stdout, "x 5B pid=")
		if err := cmd.Wait(); err != nil { // -count 1 ends it
			t.Errorf("bus %q: %v", args, err)
		}
	}
}

// A flag after the arguments is a flag: -timeout here, or req would wait
// the default 5s and say so.
func TestCLIReqTimeoutAfterTheArguments(t *testing.T) {
	b := startBusd(t)
	b.start(t, "bus: replying", "reply", "-exec", "sleep 5", "svc.slow")
	_, errOut, err := b.run("", "req", "svc.slow", "x", "-timeout", "100ms")
	if exitCode(err) != cli.ExitError || errOut != "bus: no reply from \"svc.slow\" within 100ms: timeout\n" {
		t.Errorf("bus req svc.slow x -timeout 100ms: %v, stderr %q; want exit 1, no reply within 100ms", err, errOut)
	}
}

// exitCode is the exit status of a process that ran, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// -h, --help and help print to stdout and exit 0; the usage names the
// connection flags and the environment, a command's help its flags.
func TestCLIHelp(t *testing.T) {
	b := startBusd(t)
	top := []string{"usage: bus [connection flags] COMMAND", "connection flags, before or after the command",
		"-dir DIR", "-name NAME", "-socket PATH", "-trust UIDS", "-no-reconnect",
		"BUSD_SOCKET", "BUSD_DIR", "XDG_RUNTIME_DIR", "exit status:", "completion bash|zsh|fish"}
	sub := []string{"usage: bus sub [-count N]", "-queue GROUP", "-cat-fds", "connection flags", "-dir DIR"}
	for _, tc := range []struct {
		bin  string
		args []string
		want []string
	}{
		{"bus", []string{"--help"}, top},
		{"bus", []string{"-h"}, top},
		{"bus", []string{"help"}, top},
		{"bus", []string{"-dir", "x", "--help"}, top},
		{"bus", []string{"help", "sub"}, sub},
		{"bus", []string{"sub", "-h"}, sub},
		{"bus", []string{"sub", "x", "--help"}, sub},
		{"busd", []string{"-h"}, []string{"usage: busd [flags]", "-max-conns int", "-version", "BUSD_DIR", "exit status:"}},
		{"busd", []string{"--help"}, []string{"usage: busd [flags]"}},
		{"busd", []string{"help"}, []string{"usage: busd [flags]"}},
	} {
		cmd := exec.CommandContext(b.ctx, filepath.Join(binDir, tc.bin), tc.args...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil || errOut.Len() > 0 {
			t.Errorf("%s %q: %v, stderr %q; want exit 0 and nothing on stderr", tc.bin, tc.args, err, errOut.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s %q prints no %q on stdout:\n%s", tc.bin, tc.args, w, out.String())
			}
		}
	}
}

// bus version and busd -version print the version and revision the build
// recorded, as go version -m reads them from the binary. bustest.Build may
// record no revision (go build records none in a git worktree, or with
// -buildvcs=false), and then the line says where it would come from.
func TestCLIVersion(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		args []string
	}{
		{"bus", []string{"version"}},
		{"bus", []string{"--version"}},
		{"busd", []string{"-version"}},
		{"busd", []string{"version"}},
	} {
		path := filepath.Join(binDir, tc.bin)
		info, err := exec.Command("go", "version", "-m", path).Output()
		if err != nil {
			t.Fatalf("go version -m %s: %v", path, err)
		}
		version, revision := "", cli.NoRevision
		for l := range strings.Lines(string(info)) {
			f := strings.Split(strings.TrimSpace(l), "\t")
			switch {
			case f[0] == "mod" && len(f) > 2:
				version = f[2] // "(devel)", or a pseudo-version where the revision is stamped
			case f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
				revision = "revision " + strings.TrimPrefix(f[1], "vcs.revision=")
			}
		}
		out, err := exec.Command(path, tc.args...).Output()
		if err != nil || version == "" || !strings.HasPrefix(string(out), tc.bin+" "+version+", ") || !strings.Contains(string(out), revision) {
			t.Errorf("%s %q: %v, %q; want %s %s, %s", tc.bin, tc.args, err, out, tc.bin, version, revision)
		}
	}
}
