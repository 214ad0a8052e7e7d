package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// While bus monitor '>' runs, a request nobody serves still fails at once
// with no responders (a timeout would say "no reply"), and the monitor
// shows the request, with the requester's inbox as its reply topic.
func TestCLIMonitorIsNotAResponder(t *testing.T) {
	b := startBusd(t)
	stdout, stderr := startLines(t, b.bus("monitor", ">"))
	expectLine(t, stderr, "bus: monitoring")
	_, errOut, err := b.run("", "req", "-timeout", "1m", "nobody.here", "x")
	if err == nil || !strings.Contains(errOut, "no responders") {
		t.Fatalf("bus req: %v, stderr %q; want a failure saying no responders", err, errOut)
	}
	if l := expectLine(t, stdout, "nobody.here 1B pid="); !strings.Contains(l, " reply=_INBOX.") || !strings.HasSuffix(l, " x") {
		t.Fatalf("monitor printed %q; want the request with its reply topic and payload", l)
	}
}

// A message with a file reaches a subscriber with it and the monitor
// without it, told there was one; the broker keeps no descriptor for the
// monitor. -json prints the count as fds, and the headers without the
// broker's Bus-FDs.
func TestCLIMonitorGetsNoDescriptors(t *testing.T) {
	b := startBusd(t)
	p := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := b.FDs(t)
	text, textErr := startLines(t, b.bus("monitor", "share.>"))
	expectLine(t, textErr, "bus: monitoring")
	asJSON, jsonErr := startLines(t, b.bus("monitor", "-json", "share.>"))
	expectLine(t, jsonErr, "bus: monitoring")
	sub := b.startSub(t, "-cat-fds", "-count", "1", "share.>")
	b.pub(t, "", "-attach", p, "share.file", "see attached")
	if out := sub.wait(t); !strings.Contains(out, "fds=1 see attached\nsecret\n") {
		t.Fatalf("subscriber printed %q; want the file's content", out)
	}
	expectLine(t, text, "share.file 12B pid=")
	var m jsonMsg
	if err := json.Unmarshal([]byte(expectLine(t, asJSON, `"topic":"share.file"`)), &m); err != nil {
		t.Fatal(err)
	}
	if m.FDs != 1 || len(m.Headers) != 0 || m.Text == nil || *m.Text != "see attached" {
		t.Fatalf("monitor -json printed %+v; want fds 1, no headers, the text", m)
	}
	b.WaitFDs(t, before+4) // the monitors' two connections (two descriptors each), and not a file more
}
