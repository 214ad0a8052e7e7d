package activation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystemctlDir returns a directory holding "systemctl", this test
// binary under that name (fakeSystemctl), and the file its calls go to.
func fakeSystemctlDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(self(t), filepath.Join(dir, "systemctl")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func calls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// systemd_unit: the Activator runs systemctl [--user] start --no-block
// UNIT; its failure is failed's error, with what systemctl said; its
// success is logged, and the broker then waits for the unit's service to
// take its name.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scope Scope
		flag  string
	}{{ScopeUser, "--user "}, {ScopeSystem, ""}} {
		t.Run(string(tc.scope), func(t *testing.T) {
			t.Parallel()
			fake := fakeSystemctlDir(t)
			dir := servicesDir(t)
			writeService(t, dir, "clock.test", "name = clock.test\nsystemd_unit = clock.service\n")
			writeService(t, dir, "missing.test", "name = missing.test\nsystemd_unit = missing.service\n")
			a, rec := start(t, Config{Dir: dir, Systemd: tc.scope, Systemctl: filepath.Join(fake, "systemctl")})
			fails := newFailures()
			if !a.Activate("clock.test", fails.fn()) {
				t.Fatal("Activate: false")
			}
			rec.wait(t, "systemd is starting the unit", "service", "clock.test", "unit", "clock.service")
			a.Activate("missing.test", fails.fn())
			err := fails.next(t)
			want := "systemctl " + tc.flag + "start --no-block missing.service: exit status 5: Failed to start missing.service: Unit missing.service not found."
			if err == nil || err.Error() != want {
				t.Errorf("failed(%v);\nwant %s", err, want)
			}
			got := calls(t, fake)
			if len(got) != 2 || got[0] != tc.flag+"start --no-block clock.service" || got[1] != tc.flag+"start --no-block missing.service" {
				t.Errorf("systemctl ran with %q", got)
			}
			fails.none(t)
		})
	}
}

// Without a systemctl to run, the start fails saying so.
func TestSystemdUnitWithoutSystemctl(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "clock.test", "name = clock.test\nsystemd_unit = clock.service\n")
	a, _ := start(t, Config{Dir: dir, Systemctl: "/nonexistent/systemctl"})
	fails := newFailures()
	a.Activate("clock.test", fails.fn())
	if err := fails.next(t); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("failed(%v); want no such file", err)
	}
}
