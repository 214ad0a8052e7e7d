package main

// Who may connect (docs/SECURITY.md, "Who may connect"): the socket's mode
// and group, checked by the kernel at connect(2), then busd's allow-lists,
// checked when it accepts and before the connection costs anything. The
// clients run as other users: the test binary, re-executed as a probe
// (probeEnv) under the uid and groups a test gives it, which only root can
// do. Not root, these tests skip.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/clientlib"
	"golang.org/x/sys/unix"
)

// probeEnv makes the test binary a probe: "raw:PATH" speaks the protocol
// frame by frame to the socket at PATH, "client:PATH" connects with
// clientlib. It reports a probeReport on stdout.
const probeEnv = "BUSD_TEST_PROBE"

// Ids for the tests: groups no one is in unless a test puts a probe in
// them, and a second unprivileged user.
const (
	busGroup   = 4243
	otherGroup = 4244
	thirdUID   = 65533
)

// probeReport is what a probe saw.
type probeReport struct {
	Err    string       // the dial's or the connection's error, if any
	EACCES bool         // Err is EACCES: the kernel refused the connect(2)
	Frames []probeFrame // the frames read, in order
	End    string       // "open" after INFO (the probe then hangs up), "closed" if the broker closed, or what else ended the reading
}

type probeFrame struct {
	Op   wire.Op
	Code wire.Code // of an ERR
	Text string    // of an ERR
}

// runProbe is the probe's main.
func runProbe() int {
	kind, path, _ := strings.Cut(os.Getenv(probeEnv), ":")
	var rep probeReport
	switch kind {
	case "raw":
		rep = rawProbe(path)
	case "client":
		rep = clientProbe(path)
	default:
		rep.Err = fmt.Sprintf("no probe %q", kind)
	}
	json.NewEncoder(os.Stdout).Encode(&rep)
	return 0
}

// rawProbe connects, says HELLO as any client would, and reads until INFO
// or the end of the stream.
func rawProbe(path string) (rep probeReport) {
	c, err := bustest.DialRaw(path)
	if err != nil {
		rep.Err, rep.EACCES = err.Error(), errors.Is(err, syscall.EACCES)
		return rep
	}
	defer c.Close()
	body, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: "probe"})
	// A refused probe may find the socket closed already; its ERR is
	// still there to read.
	c.Write(wire.AppendControl(nil, wire.OpHello, 0, body))
	for len(rep.Frames) < 4 {
		f, err := c.Read(watchdog)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			rep.End = "closed"
			return rep
		case err != nil:
			rep.End = err.Error()
			return rep
		}
		pf := probeFrame{Op: f.Op}
		if f.Op == wire.OpErr {
			e, _ := bustest.DecodeErr(f)
			pf.Code, pf.Text = e.Code, e.Text
		}
		rep.Frames = append(rep.Frames, pf)
		if f.Op == wire.OpInfo {
			rep.End = "open"
			return rep
		}
	}
	rep.End = "more frames than a handshake has"
	return rep
}

// clientProbe connects with clientlib, as a program would, and makes a
// round trip through the broker.
func clientProbe(path string) (rep probeReport) {
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(path), clientlib.WithName("probe"))
	if err == nil {
		defer c.Close()
		err = c.Flush(ctx)
	}
	if err != nil {
		rep.Err, rep.EACCES = err.Error(), errors.Is(err, syscall.EACCES)
		return rep
	}
	rep.End = "open"
	return rep
}

// needRoot skips a test that must start processes as other users.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: only root can run the clients (or busd) as other users")
	}
}

// runnableCopy copies the executable at src where any user can run it and
// returns the copy's path: the go tool builds the test binary, and
// bustest.Main busd, in directories only their owner may enter.
func runnableCopy(t *testing.T, src string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "runnable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, filepath.Base(src))
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// probeAs runs a probe of kind ("raw" or "client") against b's socket as
// cred, and returns its report.
func probeAs(t *testing.T, b *bustest.Busd, kind string, cred syscall.Credential) probeReport {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	cmd := exec.CommandContext(ctx, runnableCopy(t, self))
	cmd.Dir = "/"
	// A -race child would otherwise sleep a second before it exits.
	cmd.Env = []string{probeEnv + "=" + kind + ":" + b.Socket(), "GORACE=atexit_sleep_ms=0"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &cred}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as uid %d gid %d groups %v: %v\n%s", cred.Uid, cred.Gid, cred.Groups, err, stderr.String())
	}
	var rep probeReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("the probe said %q: %v", out, err)
	}
	t.Logf("probe as uid %d gid %d groups %v: %+v", cred.Uid, cred.Gid, cred.Groups, rep)
	return rep
}

// admitted checks that the probe was served: INFO and nothing before it,
// or (clientlib) a round trip.
func admitted(t *testing.T, who string, rep probeReport) {
	t.Helper()
	if rep.Err != "" || rep.End != "open" || len(rep.Frames) > 1 {
		t.Errorf("%s: %+v; want it served", who, rep)
	}
}

// refusedAtConnect checks that the kernel refused the probe's connect(2).
func refusedAtConnect(t *testing.T, who string, rep probeReport) {
	t.Helper()
	if !rep.EACCES || len(rep.Frames) != 0 {
		t.Errorf("%s: %+v; want connect(2) refused with EACCES", who, rep)
	}
}

// refusedByAllowList checks that the probe read exactly one frame, a
// permission denied naming its uid and groups (want), and then the end of
// the stream.
func refusedByAllowList(t *testing.T, who string, rep probeReport, want string) {
	t.Helper()
	if rep.Err != "" || len(rep.Frames) != 1 || rep.End != "closed" {
		t.Errorf("%s: %+v; want exactly one frame, an ERR, and the connection closed", who, rep)
		return
	}
	if f := rep.Frames[0]; f.Op != wire.OpErr || f.Code != wire.CodePermissionDenied || !strings.Contains(f.Text, want) {
		t.Errorf("%s: got %v %v %q; want ERR permission denied containing %q", who, f.Op, f.Code, f.Text, want)
	}
}

// The default mode, 0600, lets only busd's user connect: another user is
// refused by the kernel, even with the directory open to it.
func TestSocketModeRefusesOtherUsers(t *testing.T) {
	needRoot(t)
	b := bustest.StartWith(t, binDir, bustest.Options{Shared: true, Args: []string{"-mode", "0600"}})
	refusedAtConnect(t, "uid 65534", probeAs(t, b, "raw", syscall.Credential{Uid: otherUID, Gid: otherUID}))
	b.Connect(t, "owner").Close() // busd's own user is served
}

// With -mode 0660 -group G busd makes the directory 0750 and the socket
// 0660, both G's, and a member of G who is not busd's user connects with
// clientlib, whether G is its primary group or a supplementary one.
// Another user is refused by the kernel.
func TestGroupMembersMayConnect(t *testing.T) {
	needRoot(t)
	b := bustest.StartWith(t, binDir, bustest.Options{OpenParent: true,
		Args: []string{"-mode", "0660", "-group", fmt.Sprint(busGroup)}})
	for _, f := range []struct {
		path string
		mode uint32
	}{{b.Dir, unix.S_IFDIR | 0o750}, {b.Socket(), unix.S_IFSOCK | 0o660}} {
		var st unix.Stat_t
		if err := unix.Lstat(f.path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != f.mode || st.Gid != busGroup {
			t.Errorf("%s: mode %o group %d; want %o group %d", f.path, st.Mode, st.Gid, f.mode, busGroup)
		}
	}
	admitted(t, "a supplementary member", probeAs(t, b, "client",
		syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{busGroup}}))
	admitted(t, "a primary member", probeAs(t, b, "client", syscall.Credential{Uid: thirdUID, Gid: busGroup}))
	refusedAtConnect(t, "a user outside the group", probeAs(t, b, "raw",
		syscall.Credential{Uid: thirdUID, Gid: thirdUID, Groups: []uint32{otherGroup}}))
}

// A busd whose user is not in the group, and is not root, cannot give the
// socket that group, and says what would do.
func TestGroupNeedsBusdInIt(t *testing.T) {
	needRoot(t)
	dir, err := os.MkdirTemp("", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, err := range []error{os.Chmod(dir, 0o755), os.Chown(dir, otherUID, otherUID)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	cmd := exec.CommandContext(ctx, runnableCopy(t, filepath.Join(binDir, "busd")),
		"-socket", filepath.Join(dir, "bus", "g.sock"), "-mode", "0660", "-group", fmt.Sprint(busGroup))
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	want := fmt.Sprintf("uid %d may not give the directory %s to group %d; it must be a member of the group, or root",
		otherUID, filepath.Join(dir, "bus"), busGroup)
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("busd as uid %d with -group %d: %v\n%s\nwant exit status 1 and %q", otherUID, busGroup, err, out, want)
	}
}

// The -group flag takes a name or a number; names are looked up.
func TestParseGroup(t *testing.T) {
	root, err := user.LookupGroupId("0")
	if err != nil {
		t.Skipf("no name for group 0 to look up: %v", err)
	}
	for _, tc := range []struct {
		in   string
		want int
	}{{"", -1}, {"4243", 4243}, {root.Name, 0}} {
		if got, err := parseGroup(tc.in); got != tc.want || err != nil {
			t.Errorf("parseGroup(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"no-such-group-here", "4294967295", "-1"} {
		if got, err := parseGroup(in); err == nil {
			t.Errorf("parseGroup(%q) = %d; want an error", in, got)
		}
	}
}

// The allow-lists take numbers only, and say so to whoever gives a name.
func TestParseIDs(t *testing.T) {
	if got, err := parseIDs("allow-uid", "0, 1000,65534"); err != nil || fmt.Sprint(got) != "[0 1000 65534]" {
		t.Errorf("parseIDs = %v, %v; want [0 1000 65534]", got, err)
	}
	if got, err := parseIDs("allow-uid", ""); err != nil || got != nil {
		t.Errorf("parseIDs of nothing = %v, %v; want no list", got, err)
	}
	for _, in := range []string{"alice", "1000,bob", "1,,2", "-1", "4294967295"} {
		_, err := parseIDs("allow-gid", in)
		if err == nil || !strings.Contains(err.Error(), "-allow-gid: ") || !strings.Contains(err.Error(), "not names") {
			t.Errorf("parseIDs(%q) = %v; want an error saying the list takes numbers", in, err)
		}
	}
}
