package activation

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A services directory others may write to is refused: at New, and when
// it becomes so later, when it leaves no service to activate.
func TestUntrustedDirectoryRefused(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "x.test", "name = x.test\nexec = /bin/true\n")
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Dir: dir, Logger: slogNew(newRecorder())})
	if !errors.Is(err, ErrUntrustedDir) || !strings.Contains(err.Error(), "mode 0777") {
		t.Fatalf("New on a 0777 directory: %v; want ErrUntrustedDir naming the mode", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a, rec := start(t, Config{Dir: dir})
	if !slices.Equal(a.Services(), []string{"x.test"}) {
		t.Fatalf("services %q; want x.test", a.Services())
	}
	if err := os.Chmod(dir, 0o775); err != nil { // the watch sees it
		t.Fatal(err)
	}
	rec.wait(t, "services directory refused: no service can be activated until it is fixed")
	if a.Activate("x.test", newFailures().fn()) {
		t.Error("Activate from a refused directory: true")
	}
	if _, err := New(Config{Dir: filepath.Join(dir, "none"), Logger: slogNew(newRecorder())}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New on a missing directory: %v; want not exist", err)
	}
}

// A file others may write to, a symbolic link, or anything but a regular
// file is refused, and logged once; the other files load, and names that
// are not NAME.service are not service files.
func TestUntrustedFilesRefused(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "good.test", "name = good.test\nexec = /bin/true\n")
	writable := writeService(t, dir, "writable.test", "name = writable.test\nexec = /bin/true\n")
	if err := os.Chmod(writable, 0o666); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "x.service")
	os.WriteFile(other, []byte("name = link.test\nexec = /bin/true\n"), 0o644)
	if err := os.Symlink(other, filepath.Join(dir, "link.test.service")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.test.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a service"), 0o644)
	os.WriteFile(filepath.Join(dir, "good.test.service~"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden.service"), []byte("junk"), 0o644)
	a, rec := start(t, Config{Dir: dir})
	if !slices.Equal(a.Services(), []string{"good.test"}) {
		t.Errorf("services %q; want good.test alone", a.Services())
	}
	for file, want := range map[string]string{
		"writable.test.service": "mode 0666",
		"link.test.service":     "a symbolic link",
		"sub.test.service":      "not a regular file",
	} {
		got := rec.find("service file refused", "file", filepath.Join(dir, file))
		if len(got) != 1 || !strings.Contains(got[0].attrs["err"], want) {
			t.Errorf("%s: logged %v; want one line saying %q", file, got, want)
		}
	}
	if n := len(rec.find("service file refused")); n != 3 {
		t.Errorf("%d files refused; want 3:\n%s", n, rec.dump())
	}
	// Reading the directory again does not log them again.
	writeService(t, dir, "more.test", "name = more.test\nexec = /bin/true\n")
	rec.wait(t, "service loaded", "service", "more.test")
	if n := len(rec.find("service file refused")); n != 3 {
		t.Errorf("%d refusals logged after a reload; want still 3", n)
	}
}

// A change in the directory is picked up: a service added, changed,
// removed, and a file that becomes bad, then good again. SIGHUP's Reload
// reads it too.
func TestDirectoryChangesPickedUp(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	a, rec := start(t, Config{Dir: dir})
	fails := newFailures()
	if a.Activate("new.test", fails.fn()) {
		t.Fatal("Activate before its file: true")
	}
	writeService(t, dir, "new.test", childService(t, "new.test", "exit", "ACT_CODE=7"))
	rec.wait(t, "service loaded", "service", "new.test")
	if !a.Activate("new.test", fails.fn()) {
		t.Fatal("Activate after its file came: false")
	}
	if err := fails.next(t); err.Error() != "exit status 7" {
		t.Errorf("failed(%v); want exit status 7", err)
	}
	writeService(t, dir, "new.test", childService(t, "new.test", "exit", "ACT_CODE=8"))
	rec.wait(t, "service changed", "service", "new.test")
	a.Activate("new.test", fails.fn())
	if err := fails.next(t); err.Error() != "exit status 8" {
		t.Errorf("after the change: failed(%v); want exit status 8", err)
	}
	path := writeService(t, dir, "new.test", "name = new.test\nexec = relative\n")
	rec.wait(t, "service file refused", "file", path)
	rec.wait(t, "service removed", "service", "new.test")
	writeService(t, dir, "new.test", childService(t, "new.test", "exit"))
	rec.waitN(t, 2, "service loaded", "service", "new.test")
	os.Remove(path)
	rec.waitN(t, 2, "service removed", "service", "new.test")
	if a.Activate("new.test", fails.fn()) {
		t.Error("Activate after its file went: true")
	}
	// Reload (busd's SIGHUP) also reads the directory: with the watch's
	// own reload, at least one of them sees the file.
	writeService(t, dir, "hup.test", childService(t, "hup.test", "exit"))
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a.Services(), "hup.test") {
		t.Errorf("after Reload: services %q; want hup.test", a.Services())
	}
	fails.none(t)
}

// The user line: only a busd running as root runs a service as another
// user, with that user's uid, groups and home; any other busd refuses a
// file that names a user other than its own.
func TestServiceUser(t *testing.T) {
	t.Parallel()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := servicesDir(t)
	if os.Geteuid() != 0 {
		writeService(t, dir, "own.test", "name = own.test\nexec = /bin/true\nuser = "+me.Username+"\n")
		writeService(t, dir, "root.test", "name = root.test\nexec = /bin/true\nuser = root\n")
		a, rec := start(t, Config{Dir: dir})
		if !slices.Equal(a.Services(), []string{"own.test"}) {
			t.Errorf("services %q; want own.test alone", a.Services())
		}
		refused := rec.find("service file refused")
		if len(refused) != 1 || !strings.Contains(refused[0].attrs["err"], "only a busd running as root runs services as other users") {
			t.Errorf("refused: %v; want root.test, saying why", refused)
		}
		return
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	// The test binary, where nobody may run it.
	bin := filepath.Join(servicesDir(t), "child")
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "name = nobody.test\nexec = " + bin + "\nuser = nobody\nenv = ACT_CHILD=report\nenv = GODEBUG=containermaxprocs=0\n"
	writeService(t, dir, "nobody.test", body)
	writeService(t, dir, "bad.test", "name = bad.test\nexec = /bin/true\nuser = no-such-user-here\n")
	a, rec := start(t, Config{Dir: dir})
	if refused := rec.find("service file refused"); len(refused) != 1 || !strings.Contains(refused[0].attrs["err"], "no-such-user-here") {
		t.Errorf("refused: %v; want bad.test, naming its user", refused)
	}
	a.Activate("nobody.test", newFailures().fn())
	r := childReport(t, rec, "nobody.test")
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	if r.UID != uid || r.GID != gid || slices.Contains(r.Groups, 0) {
		t.Errorf("ran as uid %d gid %d groups %v; want %d, %d, without root's group", r.UID, r.GID, r.Groups, uid, gid)
	}
	if !slices.Contains(r.Env, "HOME="+nobody.HomeDir) || !slices.Contains(r.Env, "USER=nobody") {
		t.Errorf("environment %q; want nobody's HOME and USER", r.Env)
	}
}

// A directory removed leaves no service; made anew, Reload (SIGHUP) reads
// it, and watches it again.
func TestDirectoryRemovedAndMadeAgain(t *testing.T) {
	t.Parallel()
	dir := servicesDir(t)
	writeService(t, dir, "a.test", "name = a.test\nexec = /bin/true\n")
	a, rec := start(t, Config{Dir: dir})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "services directory refused: no service can be activated until it is fixed")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeService(t, dir, "b.test", "name = b.test\nexec = /bin/true\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "service loaded", "service", "b.test")
	writeService(t, dir, "c.test", "name = c.test\nexec = /bin/true\n")
	rec.wait(t, "service loaded", "service", "c.test") // the watch's
	if refused := rec.find("services directory refused: no service can be activated until it is fixed"); len(refused) != 1 {
		var errs []string
		for _, r := range refused {
			errs = append(errs, r.attrs["err"])
		}
		t.Errorf("the refusal logged %d times (%q); want once", len(refused), errs)
	}
}

// A services directory whose parent others may write to is refused too:
// whoever may write to the parent may rename the directory away and make
// one of their own in its place (or repoint a symbolic link to it). A
// sticky parent (/tmp) is safe: others cannot rename what is not theirs.
func TestUntrustedParentRefused(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "services")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeService(t, dir, "x.test", "name = x.test\nexec = /bin/true\n")
	if err := os.Chmod(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Dir: dir, Logger: slogNew(newRecorder())})
	if !errors.Is(err, ErrUntrustedDir) || !strings.Contains(err.Error(), parent) {
		t.Fatalf("New under a 0777 parent: %v; want ErrUntrustedDir naming the parent", err)
	}
	// Through a symbolic link in a directory others may write to.
	link := filepath.Join(parent, "link")
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: link, Logger: slogNew(newRecorder())}); !errors.Is(err, ErrUntrustedDir) {
		t.Fatalf("New through a link in a 0777 directory: %v; want ErrUntrustedDir", err)
	}
	// Sticky, as /tmp: fine.
	if err := os.Chmod(parent, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	a, _ := start(t, Config{Dir: dir})
	if !slices.Equal(a.Services(), []string{"x.test"}) {
		t.Fatalf("services %q; want x.test", a.Services())
	}
}
