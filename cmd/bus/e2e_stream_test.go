package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// The end-to-end tests of streams: `bus stream` processes as in a shell.

// A direct stream carries each side's stdin to the other's stdout, both
// ways, and ends when both have sent everything.
func TestCLIDirectStream(t *testing.T) {
	b := startBusd(t)
	l := b.startIn(t, "from the listener\n", "bus: listening for a stream", "stream", "listen", "chat")
	toListener := strings.Repeat("from the dialer, a long line\n", 20_000)
	out, errOut, err := b.run(toListener, "stream", "dial", "chat")
	if err != nil {
		t.Fatalf("bus stream dial: %v\n%s", err, errOut)
	}
	if out != "from the listener\n" {
		t.Errorf("dialer printed %q", out)
	}
	if got := l.wait(t); got != toListener {
		t.Errorf("listener printed %d bytes; want the %d the dialer sent", len(got), len(toListener))
	}
	// The listener took one stream and left: nobody listens any more.
	_, errOut, err = b.run("", "stream", "dial", "chat")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(errOut, `no stream listener named "chat"`) {
		t.Errorf("dial with nobody listening: %v, %q", err, errOut)
	}
}

// A topic stream carries stdin to every reader.
func TestCLITopicStream(t *testing.T) {
	b := startBusd(t)
	readers := []*proc{
		b.start(t, "bus: reading the stream", "stream", "read", "logs.build"),
		b.start(t, "bus: reading the stream", "stream", "read", "logs.build"),
	}
	text := strings.Repeat("a line of the build log\n", 10_000)
	if _, errOut, err := b.run(text, "stream", "write", "logs.build"); err != nil {
		t.Fatalf("bus stream write: %v\n%s", err, errOut)
	}
	for i, r := range readers {
		if got := r.wait(t); got != text {
			t.Errorf("reader %d printed %d bytes; want %d", i, len(got), len(text))
		}
	}
}
