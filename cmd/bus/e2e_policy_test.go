package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// What the broker's policy refuses makes the command fail, with the
// refusal printed once, naming the topic and the rule.
func TestDeniedCommandsFail(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busd.policy")
	text := fmt.Sprintf("deny uid %d publish secret.>\ndeny uid %[1]d subscribe secret.>\n", os.Getuid())
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &busd{Busd: bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-policy", file}})}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	b.ctx = ctx
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "secret.x", "hi"}, `bus: permission denied: publish to "secret.x" denied by rule at line 1`},
		{[]string{"sub", "open.x", "secret.>"}, `bus: permission denied: subscription to "secret.>" denied by rule at line 2`},
		{[]string{"req", "secret.x", "hi"}, `bus: request to "secret.x" refused: permission denied: publish to "secret.x" denied by rule at line 1`},
	} {
		_, stderr, err := b.run("", c.args...)
		if err == nil || strings.Count(stderr, c.want) != 1 || strings.Count(stderr, "permission denied") != 1 {
			t.Errorf("bus %q: %v, stderr %q; want exit 1 and %q once", c.args, err, stderr, c.want)
		}
	}
	if _, stderr, err := b.run("", "pub", "open.x", "hi"); err != nil {
		t.Errorf("an allowed publish: %v, %s", err, stderr)
	}
}
