package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
)

// SIGHUP reads the policy file again: a new policy applies at once to open
// connections, and a broken file leaves the one in force.
func TestPolicyReloadsOnHangup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busd.policy")
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("deny uid %d publish blocked.>\n", os.Getuid()))
	b := bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-policy", file}})
	c := b.Connect(t, "client")
	c.Pub("blocked.a", nil)
	c.ExpectErr(wire.CodePermissionDenied, `publish to "blocked.a" denied by rule at line 1`)

	write("# nothing but the defaults\n")
	b.Signal(t, syscall.SIGHUP)
	b.WaitLog(t, "policy reloaded", 10*time.Second)
	c.Pub("blocked.a", nil)
	c.Sync()

	write("allow uid me publish >\n")
	b.Signal(t, syscall.SIGHUP)
	b.WaitLog(t, "policy not reloaded", 10*time.Second)
	if !strings.Contains(b.Log(), `busd.policy:1: uid \"me\": ids are decimal numbers`) {
		t.Errorf("the log does not say what is wrong with the file:\n%s", b.Log())
	}
	c.Pub("blocked.b", nil)
	c.Sync()
}

// busd -check-config says whether a policy file is valid, and where its
// first error is.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.policy"), filepath.Join(dir, "bad.policy")
	os.WriteFile(good, []byte("allow gid 100 publish,subscribe team.>\nallow any all user.%uid.>\n"), 0o644)
	os.WriteFile(bad, []byte("allow gid 100 publish team.>\nallow any publsh x\n"), 0o644)
	out, err := exec.Command(filepath.Join(binDir, "busd"), "-check-config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 rules, valid") {
		t.Errorf("good file: %v, %q", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir, "busd"), "-check-config", bad).CombinedOutput()
	want := bad + `:2: verb "publsh": the verbs are all, publish, subscribe, reply, listen, dial, monitor`
	if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "allow any publsh x") {
		t.Errorf("bad file: %v, %q; want exit 1 and %q with the line quoted", err, out, want)
	}
}
