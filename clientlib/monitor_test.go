package clientlib

import (
	"errors"
	"os"
	"testing"
)

// A monitor cannot be what the broker refuses it to be, and a plain
// subscription and a monitor of one pattern on one connection are two
// subscriptions: each gets the message, the monitor without its file.
func TestAsMonitor(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	if _, err := c.QueueSubscribeSync("a", "g", AsMonitor()); !errors.Is(err, errMonitorOptions) {
		t.Fatalf("monitor in a queue group: %v; want errMonitorOptions", err)
	}
	if _, err := c.SubscribeSync("a", AsMonitor(), DisconnectWhenSlow()); !errors.Is(err, errMonitorOptions) {
		t.Fatalf("monitor that disconnects: %v; want errMonitorOptions", err)
	}
	plain, err := c.SubscribeSync("a")
	if err != nil {
		t.Fatal(err)
	}
	mon, err := c.SubscribeSync("a", AsMonitor())
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.Publish("a", []byte("x"), f); err != nil {
		t.Fatal(err)
	}
	if m := next(t, plain); len(m.Files) != 1 {
		t.Fatalf("subscriber got %d files; want 1", len(m.Files))
	} else {
		m.CloseFiles()
	}
	if m := next(t, mon); len(m.Files) != 0 || m.Header.Get("Bus-FDs") != "1" {
		t.Fatalf("monitor got %d files, Bus-FDs %q; want none, and 1", len(m.Files), m.Header.Get("Bus-FDs"))
	}
}
