package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/bustest"
)

// `bus sub '$SYS.>'` as the broker's uid sees a client's connection come
// and go, with the client's pid and why it went.
func TestCLISeesConnectionsComeAndGo(t *testing.T) {
	b := startBusd(t)
	cmd := b.bus("sub", "-json", "$SYS.>")
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	bustest.WaitLine(t, stderr, "bus: subscribed")
	pid := b.pubPID(t, "", "x", "hi")
	var up, down bool
	for !down {
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("bus sub ended")
			}
			line = l
		case <-time.After(10 * time.Second):
			t.Fatalf("no up and down events of pid %d (up: %v)", pid, up)
		}
		var m subJSON
		var ev struct {
			PID    int    `json:"pid"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || json.Unmarshal(m.Value, &ev) != nil {
			t.Fatalf("not an event: %s", line)
		}
		if ev.PID != pid {
			continue // another process's connection
		}
		switch {
		case m.Origin.Conn != 0:
			t.Fatalf("an event not from the broker: %s", line)
		case strings.HasPrefix(m.Topic, "$SYS.conn.up."):
			up = true
		case strings.HasPrefix(m.Topic, "$SYS.conn.down.") && ev.Reason == "normal" && up:
			down = true
		default:
			t.Fatalf("unexpected event %s", line)
		}
	}
}
