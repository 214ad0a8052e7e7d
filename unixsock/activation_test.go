package unixsock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestActivationListeners re-executes the test binary as a socket-activated
// child: two listening sockets as fds 3 and 4, LISTEN_FDS=2 and
// LISTEN_FDNAMES. The child plays systemd's part of setting LISTEN_PID to
// its own pid (systemd does so between fork and exec), takes the listeners
// and serves one connection on each.
func TestActivationListeners(t *testing.T) {
	if os.Getenv(helperEnv) == "activation" {
		exitHelper(activationChild())
	}
	checkFDLeaks(t)
	dir := tempSockPath(t, "")
	var files []*os.File
	for _, name := range []string{"a.sock", "b.sock"} {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dir + name, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		f, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	cmd := helperCmd(t, "TestActivationListeners", "activation",
		"LISTEN_FDS=2", "LISTEN_FDNAMES=alpha:beta", "BUSD_TEST_DIR="+dir)
	cmd.ExtraFiles = files
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.sock", "b.sock"} {
		c, err := Dial(context.Background(), dir+name)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if p := c.Peer().PID; p != os.Getpid() {
			// The listening socket was made here, so its creds are ours.
			t.Errorf("%s: Peer().PID = %d; want %d (the socket's creator)", name, p, os.Getpid())
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "served "+name {
			t.Errorf("%s: got %q, %v", name, got, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.Bytes())
	}
	for _, name := range []string{"a.sock", "b.sock"} {
		if _, err := os.Lstat(dir + name); err != nil {
			t.Errorf("activated listener's Close removed %s: %v", name, err)
		}
	}
}

func activationChild() error {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	dir := os.Getenv("BUSD_TEST_DIR")
	ls, err := ActivationListeners(WithConnOptions(WithMaxRecvFDs(3)))
	if err != nil {
		return err
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, ok := os.LookupEnv(v); ok {
			return fmt.Errorf("%s=%q still set", v, val)
		}
	}
	if len(ls) != 2 {
		return fmt.Errorf("got %d listeners; want 2", len(ls))
	}
	for i, want := range []struct{ name, file string }{{"alpha", "a.sock"}, {"beta", "b.sock"}} {
		l := ls[i]
		if l.Name() != want.name || l.Path() != dir+want.file {
			return fmt.Errorf("listener %d: name %q path %q; want %q %q", i, l.Name(), l.Path(), want.name, dir+want.file)
		}
		if !l.Activated() {
			return fmt.Errorf("listener %d: Activated() = false", i)
		}
		c, err := l.Accept()
		if err != nil {
			return err
		}
		if c.Peer().PID != os.Getppid() {
			return fmt.Errorf("accepted peer pid %d; want %d", c.Peer().PID, os.Getppid())
		}
		if _, err := c.Write([]byte("served " + want.file)); err != nil {
			return err
		}
		c.Close()
		if info, err := ProbeBus(l.Path()); err != nil || !info.Alive || info.PID != os.Getpid() {
			return fmt.Errorf("%s while served: ProbeBus = %+v, %v; want alive, pid %d (the lock taken for it)", want.file, info, err, os.Getpid())
		}
		if err := l.Close(); err != nil {
			return err
		}
		if info, err := ProbeBus(l.Path()); err != nil || info.Alive {
			return fmt.Errorf("%s after Close: ProbeBus = %+v, %v; want not alive", want.file, info, err)
		}
	}
	return nil
}

func TestActivationNotForUs(t *testing.T) {
	checkFDLeaks(t)
	for _, env := range [][2]string{
		{"1", "1"},                       // LISTEN_PID names another process
		{strconv.Itoa(os.Getpid()), "0"}, // nothing passed
	} {
		t.Setenv("LISTEN_PID", env[0])
		t.Setenv("LISTEN_FDS", env[1])
		t.Setenv("LISTEN_FDNAMES", "x")
		ls, err := ActivationListeners()
		if ls != nil || err != nil {
			t.Fatalf("ActivationListeners() = %v, %v; want nil, nil", ls, err)
		}
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			if _, ok := os.LookupEnv(v); ok {
				t.Errorf("%s still set", v)
			}
		}
	}
	os.Unsetenv("LISTEN_PID")
	if ls, err := ActivationListeners(); ls != nil || err != nil {
		t.Fatalf("ActivationListeners() without env = %v, %v; want nil, nil", ls, err)
	}
}

// TestActivationRejectsNonListener passes a connected socket where a
// listener belongs.
func TestActivationRejectsNonListener(t *testing.T) {
	if os.Getenv(helperEnv) == "activation-bad" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		ls, err := ActivationListeners()
		if !errors.Is(err, ErrNotSocket) || ls != nil {
			exitHelper(fmt.Errorf("ActivationListeners() = %v, %v; want ErrNotSocket", ls, err))
		}
		exitHelper(nil)
	}
	a, b := socketPair(t)
	f, err := a.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_ = b
	cmd := helperCmd(t, "TestActivationRejectsNonListener", "activation-bad", "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// helperCmd re-executes the test binary to run only test as the child role
// given, with a watchdog that kills it.
func helperCmd(t *testing.T, test, role string, env ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role,
		// A -race child would otherwise sleep a second before exiting.
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// exitHelper ends a child process, reporting err.
func exitHelper(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
