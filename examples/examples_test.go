// Package examples_test runs every example against a real busd, as a user
// would: separate processes, built from this tree.
package examples_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

var binDir string

func TestMain(m *testing.M) {
	bustest.Main(m, &binDir, "github.com/busd/busd/cmd/busd",
		"github.com/busd/busd/examples/pubsub", "github.com/busd/busd/examples/passfd")
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
	recv := exec.Command(filepath.Join(binDir, "passfd"), "-recv")
	recv.Env = env
	var out strings.Builder
	recv.Stdout = &out
	stderr, _ := recv.StderrPipe()
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	bustest.WaitLine(t, stderr, "waiting for a file")
	run(t, env, "passfd", "-send", "text that lives in a memfd")
	done := make(chan error, 1)
	go func() { done <- recv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("receiver: %v", err)
		}
	case <-time.After(10 * time.Second):
		recv.Process.Kill()
		t.Fatal("receiver did not finish")
	}
	if !strings.Contains(out.String(), "received a file from pid") || !strings.Contains(out.String(), "text that lives in a memfd") {
		t.Fatalf("receiver printed %q", out.String())
	}
}
