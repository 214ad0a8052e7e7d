package examples_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/clientlib"
)

// A request to a name nobody owns starts its service (examples/activation's
// clock, from a service file), which takes the name and answers it; a
// service that exits before taking its name makes the request fail at
// once, saying how it exited.
func TestActivationExample(t *testing.T) {
	services := t.TempDir()
	writeService(t, services, "org.example.Clock", filepath.Join(binDir, "clock")+" -zone UTC")
	writeService(t, services, "org.example.Broken", filepath.Join(binDir, "clock")+" -name org.example.Broken -zone No/Such_Zone")
	b := bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-services", services}})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := clientlib.Connect(ctx, clientlib.WithSocket(b.Socket()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if o, err := conn.NameOwner(ctx, "org.example.Clock"); err != nil || o.Owner != nil {
		t.Fatalf("before the request: owner %+v, %v; want nobody", o.Owner, err)
	}
	reply, err := conn.Request(ctx, clientlib.NamePrefix+"org.example.Clock", nil)
	if err != nil {
		t.Fatalf("request to the unowned activatable name: %v", err)
	}
	at, err := time.Parse(time.RFC3339, string(reply.Data))
	if err != nil || time.Since(at).Abs() > time.Hour {
		t.Fatalf("the clock answered %q (%v); want the time now", reply.Data, err)
	}
	o, err := conn.NameOwner(ctx, "org.example.Clock")
	if err != nil || o.Owner == nil || o.Owner.PID == os.Getpid() || o.Owner.PID != reply.Origin.PID || o.Owner.Name != "clock" {
		t.Fatalf("after the request: owner %+v, %v; want the clock process that answered (pid %d)", o.Owner, err, reply.Origin.PID)
	}

	_, err = conn.Request(ctx, clientlib.NamePrefix+"org.example.Broken", nil)
	if !errors.Is(err, clientlib.ErrNoResponders) || !strings.Contains(err.Error(), "activation of org.example.Broken failed: exit status 1") {
		t.Fatalf("request to a service that exits: %v; want no responders saying it exited with status 1", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the failed activation was answered only when the test's context ended")
	}

	// The clock lives as long as its bus: stopping busd ends it.
	clock := o.Owner.PID
	t.Cleanup(func() { syscall.Kill(clock, syscall.SIGKILL) }) // only if the check below failed
	conn.Close()
	b.Stop(t)
	for deadline := time.Now().Add(20 * time.Second); syscall.Kill(clock, 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the clock (pid %d) still runs 20 s after its bus stopped", clock)
		}
		time.Sleep(10 * time.Millisecond) // polling another process's exit: there is no event to wait on
	}
}

// writeService writes the service file of name to dir.
func writeService(t *testing.T, dir, name, exec string) {
	t.Helper()
	text := "name = " + name + "\nexec = " + exec + "\n"
	if err := os.WriteFile(filepath.Join(dir, name+".service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
