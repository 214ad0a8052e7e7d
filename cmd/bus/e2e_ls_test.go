package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/unixsock"
)

// Two buses in one directory, one served and one left stale by a broker
// killed with SIGKILL: bus ls lists both, the live one with its broker's
// pid, uptime and connections, the stale one as stale; -json says the
// same, one object a line.
func TestCLILsListsAliveAndStaleBuses(t *testing.T) {
	b := startBusd(t)
	dead := bustest.StartWith(t, binDir, bustest.Options{Dir: b.Dir, Args: []string{"-name", "other"}})
	dead.Signal(t, syscall.SIGKILL)
	if err := dead.WaitExit(t, 10*time.Second); err == nil {
		t.Fatal("busd exited 0 on SIGKILL")
	}
	held := b.Connect(t, "held") // the live bus serves one connection besides ls's
	held.Sync()

	out, errOut, err := b.run("", "ls", "-dir", b.Dir)
	if err != nil {
		t.Fatalf("bus ls: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("bus ls printed %d lines; want a heading and 2 buses:\n%s", len(lines), out)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME SOCKET STATE PID UPTIME CONNS" {
		t.Fatalf("heading %q", lines[0])
	}
	// Columns are aligned: each starts where the heading's does.
	for _, col := range []string{"SOCKET", "STATE", "PID"} {
		at := strings.Index(lines[0], col)
		for _, l := range lines[1:] {
			if len(l) <= at || l[at-1] != ' ' || l[at] == ' ' {
				t.Errorf("column %s (at %d) is not aligned in %q", col, at, l)
			}
		}
	}
	alive := strings.Fields(lines[1])
	want := []string{"default", b.Socket(), "alive", strconv.Itoa(b.PID())}
	if len(alive) != 6 || strings.Join(alive[:4], " ") != strings.Join(want, " ") || alive[5] != "2" {
		t.Errorf("the live bus: %q; want %q, an uptime and 2 connections (held and ls's own)", lines[1], want)
	}
	if _, err := time.ParseDuration(alive[4]); err != nil {
		t.Errorf("uptime %q: %v", alive[4], err)
	}
	stale := strings.Fields(lines[2])
	want = []string{"other", filepath.Join(b.Dir, "other.sock"), "stale", "-", "-", "-"}
	if strings.Join(stale, " ") != strings.Join(want, " ") {
		t.Errorf("the stale bus: %q; want %q", lines[2], want)
	}

	out, errOut, err = b.run("", "ls", "-json", "-dir", b.Dir)
	if err != nil {
		t.Fatalf("bus ls -json: %v\n%s", err, errOut)
	}
	var got []busEntry
	for l := range strings.Lines(out) {
		var ent busEntry
		if err := json.Unmarshal([]byte(l), &ent); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, ent)
	}
	if len(got) != 2 {
		t.Fatalf("bus ls -json printed %d objects; want 2:\n%s", len(got), out)
	}
	if g := got[0]; g.Name != "default" || g.State != "alive" || g.PID != b.PID() || g.Conns == nil || *g.Conns != 2 || g.Started == nil {
		t.Errorf("the live bus: %+v; want alive, pid %d, 2 connections, a start", g, b.PID())
	}
	if g := got[1]; g.Name != "other" || g.State != "stale" || g.PID != dead.PID() || g.Conns != nil {
		t.Errorf("the stale bus: %+v; want stale, last pid %d, no connection count", g, dead.PID())
	}
}

// A broker whose policy does not let us ask about it is still listed as
// alive, with its pid and uptime from its lock file, and "?" for what
// only its answer would say; -json says why.
func TestCLILsWhenThePolicyRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busd.policy")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("deny uid %d publish $SYS.req.info\nallow uid %[1]d all >\n", os.Getuid())), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &busd{Busd: bustest.StartWith(t, binDir, bustest.Options{Args: []string{"-policy", file}})}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	b.ctx = ctx
	out, errOut, err := b.run("", "ls", "-dir", b.Dir)
	if err != nil {
		t.Fatalf("bus ls: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("bus ls printed:\n%s\nwant a heading and one bus", out)
	}
	f := strings.Fields(lines[1])
	if len(f) != 6 || f[2] != "alive" || f[3] != strconv.Itoa(b.PID()) || f[5] != "?" {
		t.Errorf("bus ls: %q; want alive, pid %d, connections ?", lines[1], b.PID())
	}
	out, _, err = b.run("", "ls", "-json", "-dir", b.Dir)
	var ent busEntry
	if err != nil || json.Unmarshal([]byte(out), &ent) != nil || ent.Conns != nil || !strings.Contains(ent.Error, "permission denied") {
		t.Errorf("bus ls -json: %v, %q; want no connection count and the refusal", err, out)
	}
}

// bus ls asks the buses of a directory at once, not in turn, so that
// brokers that do not answer cost it one timeout, not one each. Four buses
// whose sockets accept connections but never answer are connected to all
// together (each counts the connections open on it until bus ls gives up
// and closes them); each is still listed, alive, with "?" for its
// connections, and stderr says it did not answer, and the live busd beside them is listed
// as usual, all in name order.
func TestCLILsAsksBusesAtOnce(t *testing.T) {
	b := startBusd(t)
	const n = 4
	var (
		mu         sync.Mutex
		open, most int
	)
	closed := make(chan struct{}, n)
	for i := range n {
		l, err := unixsock.Listen(filepath.Join(b.Dir, fmt.Sprintf("mute%d.sock", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				open++
				most = max(most, open)
				mu.Unlock()
				go func() {
					io.Copy(io.Discard, c) // until bus ls hangs up
					c.Close()
					mu.Lock()
					open--
					mu.Unlock()
					closed <- struct{}{}
				}()
			}
		}()
	}

	out, errOut, err := b.run("", "ls", "-timeout", "1s", "-dir", b.Dir)
	if err != nil {
		t.Fatalf("bus ls: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != n+2 {
		t.Fatalf("bus ls printed %d lines; want a heading and %d buses:\n%s", len(lines), n+1, out)
	}
	if f := strings.Fields(lines[1]); len(f) != 6 || f[0] != "default" || f[2] != "alive" || f[5] != "1" {
		t.Errorf("the live bus: %q; want default, alive, 1 connection (ls's own)", lines[1])
	}
	for i := range n {
		name := fmt.Sprintf("mute%d", i)
		f := strings.Fields(lines[i+2])
		want := []string{name, filepath.Join(b.Dir, name+".sock"), "alive", strconv.Itoa(os.Getpid())}
		if len(f) != 6 || strings.Join(f[:4], " ") != strings.Join(want, " ") || f[5] != "?" {
			t.Errorf("bus %s: %q; want %q, an uptime and connections ?", name, lines[i+2], want)
		}
		if !strings.Contains(errOut, "bus: ls "+name+": the broker did not answer within 1s") {
			t.Errorf("stderr does not say that %s did not answer:\n%s", name, errOut)
		}
	}
	for range n {
		<-closed // every connection was counted and has ended
	}
	mu.Lock()
	defer mu.Unlock()
	if most != n {
		t.Errorf("the %d buses that do not answer had at most %d connections from bus ls at once; want all %d (asked in turn, they cost a timeout each)", n, most, n)
	}
}
