package clientlib

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// connectAs connects to the bus at path as uid (the test must run as
// root): the broker records the uid of the thread that dials.
func connectAs(t *testing.T, path string, uid int) *Conn {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to connect as another uid")
	}
	for _, p := range []string{filepath.Dir(filepath.Dir(path)), filepath.Dir(path)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	type dialed struct {
		c   *Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		// The thread never goes back to the scheduler: it exits with the
		// goroutine, its uid with it.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- dialed{err: e}
			return
		}
		c, err := Connect(testCtx(t), WithSocket(path), WithName("other"), WithNoReconnect(), WithNoWait())
		ch <- dialed{c, err}
	}()
	d := <-ch
	if d.err != nil {
		t.Fatal(d.err)
	}
	t.Cleanup(func() { d.c.Close() })
	return d.c
}

// A name owned by another user is not this user's instance: SingleInstance
// does not hand it the arguments and files (under the default rules any
// user may own any name, and take a launch meant for someone else's app),
// and says who owns it.
func TestSingleInstanceNotHandedToAnotherUser(t *testing.T) {
	path, _ := startBus(t)
	squatter := connectAs(t, path, 4321)
	sub, err := squatter.SubscribeSync("_NAME.org.example.App.launch")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := squatter.RequestName(testCtx(t), "org.example.App"); err != nil || res != PrimaryOwner {
		t.Fatalf("squatter: %v %v", res, err)
	}
	flush(t, squatter)
	me := connect(t, path)
	f, err := os.CreateTemp(t.TempDir(), "doc")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inst, err := SingleInstance(testCtx(t), me, "org.example.App", []string{"secret"}, f)
	if !errors.Is(err, ErrOwnedByOtherUser) || inst != nil {
		t.Fatalf("SingleInstance with another user's owner: %v, %v; want ErrOwnedByOtherUser", inst, err)
	}
	// The squatter got nothing: the first message it gets from this
	// connection is one sent after the refusal.
	if err := me.Publish("_NAME.org.example.App.launch", []byte("marker")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); string(m.Data) != "marker" {
		t.Fatalf("the squatter got %q (%d files) first", m.Data, len(m.Files))
	}
}
