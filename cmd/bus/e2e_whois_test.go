package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// whoisFields parses `bus whois` output: one "key value" a line.
func whoisFields(t *testing.T, out string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			t.Fatalf("whois line %q is not 'key value'", line)
		}
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

// A subscriber takes the connection id from a message's origin and asks
// who sent it: whois names the publisher's process and its executable,
// and, once the publisher is gone, says so and fails.
func TestCLIWhoisNamesThePublisher(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-count", "1", "who.*")
	pub := b.bus("pub", "who.here") // publishes each line of stdin: it stays until stdin ends
	stdin, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubErr strings.Builder
	pub.Stderr = &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer pub.Process.Kill()
	if _, err := io.WriteString(stdin, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line := sub.wait(t)
	m := regexp.MustCompile(`^who\.here 5B pid=(\d+) uid=\d+ conn=(\d+) fds=0 hello\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("bus sub printed %q; want the message with its origin's pid and conn", line)
	}
	if pid, _ := strconv.Atoi(m[1]); pid != pub.Process.Pid {
		t.Fatalf("origin pid %d; the publisher is %d", pid, pub.Process.Pid)
	}
	conn := m[2]

	out, errOut, err := b.run("", "whois", conn)
	if err != nil {
		t.Fatalf("bus whois %s: %v\n%s", conn, err, errOut)
	}
	f := whoisFields(t, out)
	bin, _ := filepath.EvalSymlinks(filepath.Join(binDir, "bus"))
	want := map[string]string{"conn": conn, "pid": fmt.Sprint(pub.Process.Pid), "name": `"bus-cli"`, "exe": bin}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("whois %s: %s %q; want %q (output:\n%s)", conn, k, f[k], v, out)
		}
	}
	for _, k := range []string{"uid", "gid", "since"} {
		if f[k] == "" {
			t.Errorf("whois %s printed no %s:\n%s", conn, k, out)
		}
	}

	// Gone: its connection is closed, and the id is never given again.
	stdin.Close()
	if err := pub.Wait(); err != nil {
		t.Fatalf("bus pub: %v\n%s", err, pubErr.String())
	}
	out, errOut, err = b.run("", "whois", conn)
	if err == nil || !strings.Contains(errOut, "no connection "+conn+" on this bus") {
		t.Fatalf("whois of a closed connection: %v, stdout %q, stderr %q; want a failure saying there is no such connection", err, out, errOut)
	}
}
