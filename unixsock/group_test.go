package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests that need other users run the test binary as a child under
// otherUID, which only root can start.
const (
	otherUID   = 65534 // nobody
	socketGID  = 4243  // a group for the socket, no one's primary group
	elsewhere  = 4244  // another group
	manyGroups = 100   // more than the first SO_PEERGROUPS read has room for
)

// testGroup returns the group the tests give sockets: socketGID as root,
// which may give any group; otherwise the test's own primary group, the
// one group a user may always give its files.
func testGroup() int {
	if os.Geteuid() == 0 {
		return socketGID
	}
	return os.Getgid()
}

// childAs re-executes the test binary to run only test as the child role
// given, as the user and groups of cred. The binary is copied where that
// user can run it: the go tool builds it in a directory only its owner may
// enter.
func childAs(t *testing.T, test, role string, cred *syscall.Credential, env ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "child")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "child")
	data, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd(t, test, role, env...)
	cmd.Path, cmd.Args[0], cmd.Dir = bin, bin, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd
}

func TestWithGroupRefusesIDsThatAreNoGroup(t *testing.T) {
	for _, gid := range []int{-1, 1<<32 - 1, 1 << 40} {
		_, err := Listen(tempSockPath(t, "g.sock"), WithGroup(gid))
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("WithGroup(%d): Listen = %v; want ErrInvalidOption", gid, err)
		}
	}
}

// With a group, the directory Listen creates is 0750 and the group's, and
// the socket has the group and the mode asked for, whatever the umask.
func TestListenGivesTheSocketAndItsDirectoryTheGroup(t *testing.T) {
	checkFDLeaks(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	gid := testGroup()
	path := tempSockPath(t, "shared/g.sock")
	l := listenT(t, path, WithMode(0o660), WithGroup(gid))
	for _, want := range []struct {
		path string
		mode uint32
	}{{filepath.Dir(path), unix.S_IFDIR | 0o750}, {path, unix.S_IFSOCK | 0o660}} {
		var st unix.Stat_t
		if err := unix.Lstat(want.path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != want.mode || int(st.Gid) != gid {
			t.Errorf("%s: mode %o group %d; want mode %o group %d", want.path, st.Mode, st.Gid, want.mode, gid)
		}
	}
	dialAccept(t, l)
}

// An existing directory is used as it is if the group may search it, and
// refused, naming the directory and the group, if not.
func TestListenWithGroupChecksAnExistingDirectory(t *testing.T) {
	gid := testGroup()
	for _, tc := range []struct {
		mode     os.FileMode
		group    int
		want     error
		rootOnly bool // giving the directory another group needs root
	}{
		{0o750, gid, nil, false},
		{0o710, gid, nil, false},
		{0o755, elsewhere, nil, true},
		{0o700, gid, ErrUnreachableDir, false},
		{0o705, gid, ErrUnreachableDir, false}, // the group's bits count for its members
		{0o750, elsewhere, ErrUnreachableDir, true},
		{0o770, gid, ErrInsecureDir, false},
	} {
		name := fmt.Sprintf("%04o group %d", tc.mode, tc.group)
		if tc.rootOnly && os.Geteuid() != 0 {
			t.Logf("%s: not root, so the directory cannot have another group; not checked", name)
			continue
		}
		path := tempSockPath(t, "e.sock")
		dir := filepath.Dir(path)
		if err := os.Chown(dir, -1, tc.group); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		l, err := Listen(path, WithGroup(gid))
		if l != nil {
			l.Close()
		}
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: Listen = %v; want it to listen", name, err)
		case tc.want == nil:
		case !errors.Is(err, tc.want):
			t.Errorf("%s: Listen = %v; want %v", name, err, tc.want)
		case tc.want == ErrUnreachableDir && !strings.Contains(err.Error(), fmt.Sprintf("%s has mode %04o and group %d, so members of group %d", dir, tc.mode, tc.group, gid)):
			t.Errorf("%s: %q does not say what is wrong", name, err)
		}
	}
}

// A user that is not a member of the group may not give it the socket,
// nor the directory: Listen says so and leaves nothing behind.
func TestListenWithAGroupItIsNotIn(t *testing.T) {
	if os.Getenv(helperEnv) == "not-in-group" {
		exitHelper(notInGroupChild(os.Getenv("BUSD_TEST_DIR")))
	}
	if os.Geteuid() != 0 {
		// The user may be a member of any group; root is the one that
		// can start a child that is not.
		t.Skip("not root: cannot start a child as a user outside the group")
	}
	dir, err := os.MkdirTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, err := range []error{os.Chmod(dir, 0o755), os.Chown(dir, otherUID, otherUID)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := childAs(t, "TestListenWithAGroupItIsNotIn", "not-in-group",
		&syscall.Credential{Uid: otherUID, Gid: otherUID}, "BUSD_TEST_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// notInGroupChild listens with socketGID, which it is not a member of,
// in a new directory and in an existing one.
func notInGroupChild(dir string) error {
	for _, path := range []string{filepath.Join(dir, "new", "n.sock"), filepath.Join(dir, "n.sock")} {
		l, err := Listen(path, WithMode(0o660), WithGroup(socketGID))
		if err == nil {
			l.Close()
			return fmt.Errorf("Listen(%s) as uid %d with group %d worked; want it refused", path, os.Geteuid(), socketGID)
		}
		if !errors.Is(err, ErrNotInGroup) || !errors.Is(err, fs.ErrPermission) ||
			!strings.Contains(err.Error(), fmt.Sprintf("uid %d may not give", os.Geteuid())) ||
			!strings.Contains(err.Error(), "must be a member of the group, or root") {
			return fmt.Errorf("Listen(%s) = %v; want ErrNotInGroup and EPERM, saying who must be in the group", path, err)
		}
	}
	// Neither the new directory nor a temporary socket stays.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"n.lock"}) {
		return fmt.Errorf("%s holds %v after the refusals; want only the lock file", dir, names)
	}
	return nil
}

// A peer's supplementary groups come with its credentials, however many
// it has.
func TestPeerGroupsOfAnotherUser(t *testing.T) {
	if os.Getenv(helperEnv) == "peer-groups" {
		exitHelper(peerGroupsChild(os.Getenv("BUSD_TEST_SOCK")))
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot start a child with other groups")
	}
	checkFDLeaks(t)
	path := tempSockPath(t, "p.sock")
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l := listenT(t, path, WithMode(0o666))
	var groups []uint32
	for g := range uint32(manyGroups) {
		groups = append(groups, 5000+g)
	}
	cmd := childAs(t, "TestPeerGroupsOfAnotherUser", "peer-groups",
		&syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: groups}, "BUSD_TEST_SOCK="+path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err == nil {
		c.Close() // the child waits for this
	}
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("child: %v\n%s", werr, out.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	want := Cred{PID: cmd.Process.Pid, UID: otherUID, GID: otherUID, Groups: groups}
	if got := c.Peer(); !sameCred(got, want) {
		t.Fatalf("Peer() = %+v; want %+v", got, want)
	}
}

// peerGroupsChild connects to path and waits for the other end to close.
func peerGroupsChild(path string) error {
	c, err := dialFromChild(path)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		return errors.New("read data; want the end of the stream")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}
