package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/busd/busd/bus/bustest"
)

// busd -services DIR loads the service files of DIR, logs the ones it
// refuses, and reads the directory again when it changes and on SIGHUP.
func TestServicesDirectory(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "services") // 0700: busd's user's alone
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("org.example.Clock.service", "name = org.example.Clock\nexec = /usr/bin/clockd --bus\n")
	write("bad.service", "name = bad\nexec = clockd\n")
	b := bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-services", dir}})
	b.WaitLog(t, "msg=activation services="+dir+" count=1", watchdog)
	for _, want := range []string{
		"msg=\"service loaded\" service=org.example.Clock",
		"bad.service:2: exec: the program \\\"clockd\\\" is not an absolute path",
	} {
		if !strings.Contains(b.Log(), want) {
			t.Errorf("the log has no %s:\n%s", want, b.Log())
		}
	}
	write(".new.tmp", "name = org.example.New\nsystemd_unit = new.service\n")
	if err := os.Rename(filepath.Join(dir, ".new.tmp"), filepath.Join(dir, "org.example.New.service")); err != nil {
		t.Fatal(err)
	}
	b.WaitLog(t, "msg=\"service loaded\" service=org.example.New", watchdog)
	b.Signal(t, syscall.SIGHUP)
	b.WaitLog(t, "msg=\"services directory read again\" services=2", watchdog)
	if strings.Contains(b.Log(), "no -policy file to reload") {
		t.Error("SIGHUP with -services and no -policy warns that there is no policy to reload")
	}
}

// -services with a directory others may write to, or that does not exist,
// stops busd before it serves, saying why, and leaves no socket behind;
// bad values of the activation flags are usage errors.
func TestServicesRefused(t *testing.T) {
	t.Parallel()
	open, err := os.MkdirTemp("", "services")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-services", open}, 1, "-services: activation: untrusted services directory: " + open + " has mode 0777"},
		{[]string{"-services", filepath.Join(open, "none")}, 1, "no such file or directory"},
		{[]string{"-services-systemd", "session"}, 2, `-services-systemd "session": give user or system`},
		{[]string{"-activation-timeout", "0s"}, 2, "-activation-timeout 0s: give a positive duration"},
	} {
		code, out := runBusd(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) || strings.Contains(out, "msg=listening") {
			t.Errorf("busd %q: exit %d, output:\n%s\nwant exit %d, %q, and no listening", tc.args, code, out, tc.code, tc.want)
		}
	}
}
