package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
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
