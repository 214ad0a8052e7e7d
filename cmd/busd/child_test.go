package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// child is a process a test started from this test binary (an attacker,
// another user's client): its stdin, whose end tells it to exit, and its
// stdout, where it reports one JSON line at a time.
type child struct {
	stdin  io.WriteCloser
	out    *bufio.Reader
	exited chan error
	ended  sync.Once
}

// startChild starts cmd. However the test ends, the child goes: its stdin
// is closed and it must exit cleanly within the watchdog, or it is killed
// and the test fails.
func startChild(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{stdin: stdin, out: bufio.NewReader(stdout), exited: make(chan error, 1)}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() { c.end(t, cmd) })
	return c
}

// end closes the child's stdin and waits for it to exit, once.
func (c *child) end(t *testing.T, cmd *exec.Cmd) {
	c.ended.Do(func() {
		c.stdin.Close()
		select {
		case err := <-c.exited:
			if err != nil {
				t.Errorf("%s: %v", cmd.Path, err)
			}
		case <-time.After(watchdog):
			cmd.Process.Kill()
			t.Errorf("%s did not exit", cmd.Path)
		}
	})
}

// report reads the child's next JSON line into v, failing the test if none
// comes within the watchdog.
func (c *child) report(t *testing.T, v any) {
	t.Helper()
	line := make(chan []byte, 1)
	go func() {
		l, _ := c.out.ReadBytes('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if err := json.Unmarshal(l, v); err != nil {
			t.Fatalf("the child said %q: %v", l, err)
		}
	case <-time.After(watchdog):
		t.Fatal("the child reported nothing")
	}
}
