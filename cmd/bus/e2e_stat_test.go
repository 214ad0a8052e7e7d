package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// statRows parses `bus stat -json` output: one object a line.
func statRows[T any](t *testing.T, out string) []T {
	t.Helper()
	var rows []T
	for line := range strings.Lines(out) {
		var r T
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bus stat printed %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// bus stat -once -json lists the connections with their pids: a running
// `bus sub` is among them, with its subscription and the message it got;
// -subs lists its pattern; bus stat leaves out its own connection.
func TestCLIStatListsConnections(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "stat.>")
	b.pub(t, "", "stat.x", "hello")

	out, errOut, err := b.run("", "stat", "-once", "-json")
	if err != nil {
		t.Fatalf("bus stat -once -json: %v\n%s", err, errOut)
	}
	rows := statRows[connRow](t, out)
	if len(rows) != 1 {
		t.Fatalf("bus stat listed %d connections; want the subscriber's alone:\n%s", len(rows), out)
	}
	r := rows[0]
	if r.PID != sub.cmd.Process.Pid || r.UID != os.Getuid() || r.Name != "bus-cli" || r.Subs != 1 || r.MsgsOut != 1 || r.BytesOut == 0 || r.InRate != nil {
		t.Fatalf("bus stat: %+v; want pid %d with one subscription and one message out, no rate in one sample", r, sub.cmd.Process.Pid)
	}

	out, errOut, err = b.run("", "stat", "-once", "-json", "-subs")
	if err != nil {
		t.Fatalf("bus stat -subs: %v\n%s", err, errOut)
	}
	if subs := statRows[subRow](t, out); len(subs) != 1 || subs[0] != (subRow{Pattern: "stat.>", Subs: 1}) {
		t.Fatalf("bus stat -subs: %+v; want stat.> with one subscription", subs)
	}
}

// bus stat refreshes until ctrl-C, with the rates from the second sample
// on, and exits 0 then.
func TestCLIStatRefreshes(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "stat.>")
	cmd := b.bus("stat", "-interval", "10ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var samples, rated int
	for samples < 3 && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case strings.Contains(sc.Text(), "connections: every uid's"):
			samples++
		case len(f) > 7 && f[1] == strconv.Itoa(sub.cmd.Process.Pid) && f[6] == "0.0" && f[7] == "0.0":
			rated++
		}
	}
	if samples < 3 || rated == 0 {
		t.Fatalf("bus stat printed %d samples, %d lines with the subscriber's rates; want 3 and some", samples, rated)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go func() { // it must not block on a full pipe while exiting
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bus stat on ctrl-C: %v; want exit 0", err)
	}
}

// openPTY opens a pseudo-terminal and returns its controlling side and
// the terminal a program writes to.
func openPTY(t *testing.T) (control, term *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	control = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { control.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	term, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return control, term
}

// On a terminal, bus stat redraws the screen for each sample, as top
// does, instead of printing samples one after the other.
func TestCLIStatRedrawsATerminal(t *testing.T) {
	b := startBusd(t)
	b.startSub(t, "stat.>")
	control, term := openPTY(t)
	cmd := b.bus("stat", "-interval", "10ms")
	cmd.Stdout = term
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	term.Close() // the child has it

	const redraw = "\x1b[H\x1b[2J"
	var screen []byte
	buf := make([]byte, 4096)
	for strings.Count(string(screen), redraw) < 3 {
		n, err := control.Read(buf)
		if err != nil {
			t.Fatalf("reading the terminal: %v, after %q", err, screen)
		}
		screen = append(screen, buf[:n]...)
	}
	// Each sample begins with the redraw: nothing is printed before the
	// first, and no blank line separates them as off a terminal.
	if !strings.HasPrefix(string(screen), redraw) || strings.Contains(string(screen), "\r\n\r\n") {
		t.Fatalf("bus stat on a terminal printed %q; want each sample after a redraw", screen)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, control) // it must not block on a full terminal while exiting
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bus stat on ctrl-C: %v; want exit 0", err)
	}
}
