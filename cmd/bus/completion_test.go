package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// completionScript runs `bus completion SHELL` and returns the script,
// written to a file for the shell to read.
func completionScript(t *testing.T, shell string) (script, path string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut}
	if err := run(context.Background(), []string{"completion", shell}, e); err != nil {
		t.Fatalf("bus completion %s: %v\n%s", shell, err, errOut.String())
	}
	for _, c := range commands {
		if !strings.Contains(out.String(), c.name) {
			t.Errorf("the %s script does not name the command %s", shell, c.name)
		}
	}
	for _, flag := range []string{"dir", "socket", "no-reconnect", "cat-fds", "timeout"} { // fish writes them without their '-'
		if !strings.Contains(out.String(), flag) {
			t.Errorf("the %s script does not name the flag %s", shell, flag)
		}
	}
	path = filepath.Join(t.TempDir(), "bus."+shell)
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return out.String(), path
}

// shell returns the path of the shell, or skips the rest of the test.
func shell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed: its script was made but not run", name)
	}
	return p
}

// runShell runs a shell script and returns its output.
func runShell(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%q: %v\n%s", args, err, out)
	}
	return string(out)
}

// completions are lines of a command line and what completing its last
// word offers, for every shell.
var completions = []struct {
	line []string // the words, the last one being completed
	want string   // the matches, sorted, space-separated
}{
	{[]string{"bus", "-dir", "/tmp", "su"}, "sub"},
	{[]string{"bus", "sub", "-c"}, "-cat-fds -count"},
	{[]string{"bus", "stream", "-timeout", "1s", "d"}, "dial"},
	{[]string{"bus", "help", "comp"}, "completion"},
	{[]string{"bus", "completion", "f"}, "fish"},
	{[]string{"bus", "-no-r"}, "-no-reconnect"},
	{[]string{"bus", "na"}, "names"},
	{[]string{"bus", "own", "-rep"}, "-replace"},
	{[]string{"bus", "own", "-allow-replacement", "-no"}, "-no-queue -no-reconnect"},
}

// The scripts skip a value flag's value by the flag's name alone, before
// they know the command: a name must take a value in every command or in
// none.
func TestFlagNamesTakeAValueEverywhereOrNowhere(t *testing.T) {
	comp := newCompletion()
	takes := map[string]string{} // flag name -> "value" or "no value", and the command that says so
	for _, c := range comp.Commands {
		for _, f := range c.Flags {
			kind := "no value"
			if f.Value {
				kind = "value"
			}
			if prev, ok := takes[f.Name]; ok && !strings.HasPrefix(prev, kind+" ") {
				t.Errorf("%s takes %s in %s, but %s", f.Name, kind, c.Name, prev)
			}
			takes[f.Name] = kind + " (in " + c.Name + ")"
		}
	}
	if takes["-count"] == "" || !strings.HasPrefix(takes["-count"], "value") || !strings.HasPrefix(takes["-json"], "no value") {
		t.Errorf("flags read wrong: -count %q, -json %q", takes["-count"], takes["-json"])
	}
}

func TestCompletionBash(t *testing.T) {
	_, path := completionScript(t, "bash")
	bash := shell(t, "bash")
	runShell(t, bash, "-n", path)
	script := "source " + path + "\n" +
		`offer() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bus; printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' '; }` + "\n"
	for _, c := range completions {
		script += "offer " + strings.Join(quoteAll(c.line), " ") + "\n"
	}
	checkOffers(t, runShell(t, bash, "-c", script))
}

func TestCompletionFish(t *testing.T) {
	_, path := completionScript(t, "fish")
	fish := shell(t, "fish")
	runShell(t, fish, "-n", path)
	script := "source " + path + "\n"
	for _, c := range completions {
		// complete -C prints each match and its description, a tab between.
		script += "complete -C " + shellQuote(strings.Join(c.line, " ")) + " | string replace -r '\\t.*' '' | sort | paste -sd' '\n"
	}
	checkOffers(t, runShell(t, fish, "-c", script))
}

// zsh completes only in its line editor: the test types each line and a
// tab into an interactive zsh on a pseudo-terminal (zpty), and has it
// echo the line the completion left. Lines with one match only, then.
func TestCompletionZsh(t *testing.T) {
	_, path := completionScript(t, "zsh")
	zsh := shell(t, "zsh")
	runShell(t, zsh, "-n", path)
	script := `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PS1="> "; autoload -U compinit; compinit -u -D; source ` + path + `; print RE""ADY'
zpty -r z line '*READY*'
`
	var want []string
	for _, c := range completions {
		if strings.Contains(c.want, " ") {
			continue
		}
		typed := strings.Join(c.line, " ")
		script += "zpty -w -n z " + shellQuote(typed) + "$'\\t\\x01print -r -- \\x05\\n'\n"
		want = append(want, strings.Join(c.line[:len(c.line)-1], " ")+" "+c.want)
	}
	script += `zpty -w z 'print DO""NE'
zpty -r z out '*DONE*'
print -r -- "$out"
zpty -d z
`
	out := strings.ReplaceAll(runShell(t, zsh, "-f", "-c", script), "\r", "")
	for _, w := range want {
		if !strings.Contains(out, "\n"+w+" \n") && !strings.Contains(out, "\n"+w+"\n") {
			t.Errorf("zsh did not complete to %q:\n%q", w, out)
		}
	}
}

func checkOffers(t *testing.T, out string) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != len(completions) {
		t.Fatalf("got %d lines of matches for %d command lines:\n%s", len(got), len(completions), out)
	}
	for i, c := range completions {
		if got[i] != c.want {
			t.Errorf("completing %q offers %q; want %q", c.line, got[i], c.want)
		}
	}
}

func quoteAll(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return q
}
