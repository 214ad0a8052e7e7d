// Package examples_test runs every example against a real busd, as a user
// would: separate processes, built from this tree.
package examples_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

var binDir string

func TestMain(m *testing.M) {
	bustest.Main(m, &binDir, "github.com/busd/busd/cmd/busd",
		"github.com/busd/busd/examples/pubsub", "github.com/busd/busd/examples/passfd",
		"github.com/busd/busd/examples/request-reply", "github.com/busd/busd/examples/workers",
		"github.com/busd/busd/examples/streams", "github.com/busd/busd/examples/plugins-policy",
		"github.com/busd/busd/examples/reconnect", "github.com/busd/busd/examples/single-instance",
		"github.com/busd/busd/examples/activation/clock", "github.com/busd/busd/examples/large-payload")
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// start runs an example that keeps running, waits until it writes a line
// containing ready to stderr, and returns it with its stdout. A process
// still running when the test ends is killed.
func start(t *testing.T, env []string, ready, name string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = env
	out := new(strings.Builder)
	cmd.Stdout = out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	bustest.WaitLine(t, stderr, ready)
	return cmd, out
}

// waitExit waits up to ten seconds for cmd to exit and fails the test unless
// it exits with status 0.
func waitExit(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %q: %v", filepath.Base(cmd.Path), cmd.Args[1:], err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q did not exit", filepath.Base(cmd.Path), cmd.Args[1:])
	}
}

// interrupt stops cmd with SIGINT and expects a clean exit.
func interrupt(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd)
}

func TestPubSubExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	out := run(t, env, "pubsub")
	for _, want := range []string{"greet.world: hello, world", "greet.bus: hello, bus", "greet.you: hello, you"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPassFDExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	recv, out := start(t, env, "waiting for a file", "passfd", "-recv")
	run(t, env, "passfd", "-send", "text that lives in a memfd")
	waitExit(t, recv)
	if !strings.Contains(out.String(), "received a file from pid") || !strings.Contains(out.String(), "text that lives in a memfd") {
		t.Fatalf("receiver printed %q", out.String())
	}
}

func TestRequestReplyExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	service, _ := start(t, env, "serving math.sum", "request-reply", "-serve")
	got := run(t, env, "request-reply")
	want := `math.sum "1 2 3" -> 6
math.sum "40 2" -> 42
math.sum "7 seven" -> error: "seven" is not a number
math.product: no responders
`
	if got != want {
		t.Errorf("client printed\n%s\nwant\n%s", got, want)
	}
	interrupt(t, service)
}

func TestStreamsExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	server, _ := start(t, env, `serving streams "squares" and "web"`, "streams", "-serve")
	got := run(t, env, "streams")
	want := `squares: 3 -> 9
squares: 12 -> 144
squares: 1048576 -> 1099511627776
web: 200 OK: GET /hello over a busd stream
nobody: no listener
`
	if got != want {
		t.Errorf("client printed\n%s\nwant\n%s", got, want)
	}
	interrupt(t, server)
}

func TestWorkersExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	names := []string{"alice", "bob"}
	workers := map[string]*exec.Cmd{}
	logs := map[string]*strings.Builder{}
	for _, name := range names {
		workers[name], logs[name] = start(t, env, "worker "+name+" ready", "workers", "-work", name)
	}
	const jobs = 40
	out := run(t, env, "workers", "-jobs", strconv.Itoa(jobs))

	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	doneBy := parseJobs(t, lines[:len(lines)-1], jobs, names)
	count := map[string]int{}
	for _, name := range doneBy {
		count[name]++
	}
	// Each job picks a worker at random: one of them got none with
	// probability 2^-39.
	if count["alice"] == 0 || count["bob"] == 0 {
		t.Errorf("jobs per worker %v; want some for each", count)
	}
	summary := fmt.Sprintf("%d jobs: alice %d, bob %d", jobs, count["alice"], count["bob"])
	if last := lines[len(lines)-1]; last != summary {
		t.Errorf("summary %q; want %q", last, summary)
	}

	// Each worker saw exactly the jobs it answered: none went to both.
	for _, name := range names {
		interrupt(t, workers[name])
		var want strings.Builder
		for job, by := range doneBy {
			if by == name {
				fmt.Fprintf(&want, "%s: jobs.%d\n", name, job)
			}
		}
		if got := logs[name].String(); got != want.String() {
			t.Errorf("worker %s printed\n%s\nwant\n%s", name, got, want.String())
		}
	}
}

func TestPluginsPolicyExample(t *testing.T) {
	out := run(t, nil, "plugins-policy") // it runs its own broker
	if os.Geteuid() != 0 {
		checkPluginUnconfined(t, out, os.Geteuid())
		return
	}
	want := []string{
		"plugin: subscribe plugin.65534.echo and plugin.65534.seen: allowed",
		"plugin: subscribe >: allowed",
		`host: plugin.65534.echo "hello" -> "hello" from uid 65534`,
		`host: published host.secrets; the plugin's ">" subscription got: plugin.65534.echo, plugin.65534.seen`,
		"host: host.secrets never reached the plugin",
		"host: plugin stopped, broker shut down",
	}
	lines := checkLines(t, out, want)
	for _, prefix := range []string{"plugin: subscribe host.secrets: ", "plugin: publish host.commands: ", "plugin: subscribe _INBOX."} {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
		if i < 0 || !strings.Contains(lines[i], "denied (bus: permission denied: ") {
			t.Errorf("no line starting %q saying it was denied (bus: permission denied: ...) in\n%s", prefix, out)
		}
	}
	if strings.Contains(out, "note:") {
		t.Errorf("run as root, it printed the note for other users:\n%s", out)
	}

	// CI runs as root; run it as nobody too, as everyone else would.
	checkPluginUnconfined(t, runAs(t, 65534, "plugins-policy"), 65534)
}

// checkPluginUnconfined checks the plugins-policy example's output when run
// by uid, not root: the plugin runs as uid too, which the policy lets do
// anything.
func checkPluginUnconfined(t *testing.T, out string, uid int) {
	t.Helper()
	lines := checkLines(t, out, []string{
		"plugin: subscribe host.secrets: allowed",
		fmt.Sprintf(`host: plugin.%d.echo "hello" -> "hello" from uid %d`, uid, uid),
		fmt.Sprintf(`host: published host.secrets; the plugin's ">" subscription got: plugin.%d.echo, host.secrets, plugin.%d.seen`, uid, uid),
		"host: plugin stopped, broker shut down",
	})
	if !strings.HasPrefix(lines[0], "note: not running as root, so the plugin runs as uid "+strconv.Itoa(uid)) {
		t.Errorf("first line %q; want the note that the plugin is not confined", lines[0])
	}
}

// checkLines checks that out has each of want as a whole line, and the last
// of them last, and returns its lines.
func checkLines(t *testing.T, out string, want []string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line %q in\n%s", w, out)
		}
	}
	if last := lines[len(lines)-1]; last != want[len(want)-1] {
		t.Errorf("last line %q; want %q", last, want[len(want)-1])
	}
	return lines
}

// runAs runs binDir/name as uid (and gid), with an empty environment, and
// returns its output. The binary is copied where uid may run it: binDir is
// open to its owner only.
func runAs(t *testing.T, uid uint32, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "runas")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(filepath.Join(binDir, name))
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), data, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, name))
	cmd.Dir, cmd.Env = "/", []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as uid %d: %v\n%s", name, uid, err, out)
	}
	return string(out)
}

// parseJobs parses the "job N done by NAME" lines of the workers example and
// returns who did each of the jobs 0 to jobs-1, checking that each was done
// exactly once, by one of the named workers.
func parseJobs(t *testing.T, lines []string, jobs int, names []string) []string {
	t.Helper()
	by := make([]string, jobs)
	jobLine := regexp.MustCompile(`^job (\d+) done by (.*)$`)
	for _, line := range lines {
		m := jobLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected line %q", line)
		}
		job, err := strconv.Atoi(m[1])
		switch {
		case err != nil || job >= jobs:
			t.Errorf("job %s was never sent", m[1])
		case by[job] != "":
			t.Errorf("job %d done twice, by %s and %s", job, by[job], m[2])
		case !slices.Contains(names, m[2]):
			t.Errorf("job %d done by %q, who is not a worker", job, m[2])
		default:
			by[job] = m[2]
		}
	}
	for job, name := range by {
		if name == "" {
			t.Errorf("job %d not reported done", job)
		}
	}
	return by
}
