package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Retained first: a value retained before a subscriber
// starts is the first thing `bus sub -retained` prints, marked retained,
// then every update, none missing, in order.
func TestCLIRetainedFirstThenUpdates(t *testing.T) {
	b := startBusd(t)
	b.pub(t, "", "-retain", "sensor.temp", "20")
	b.pub(t, "", "-retain", "sensor.gone", "x")
	b.pub(t, "", "-retain", "sensor.gone", "") // cleared: never printed
	const updates = 200
	sub := b.startSub(t, "-retained", "-count", strconv.Itoa(1+updates), "sensor.>")
	var lines strings.Builder
	for i := 1; i <= updates; i++ {
		fmt.Fprintf(&lines, "%d\n", 20+i)
	}
	b.pub(t, lines.String(), "-retain", "sensor.temp")
	got := strings.Split(strings.TrimSuffix(sub.wait(t), "\n"), "\n")
	if len(got) != 1+updates {
		t.Fatalf("%d lines; want %d:\n%s", len(got), 1+updates, strings.Join(got, "\n"))
	}
	if !strings.HasPrefix(got[0], "sensor.temp 2B ") || !strings.HasSuffix(got[0], " retained 20") {
		t.Fatalf("first line %q; want the retained value 20, marked retained", got[0])
	}
	for i, line := range got[1:] {
		want := strconv.Itoa(21 + i)
		if !strings.HasPrefix(line, "sensor.temp ") || strings.Contains(line, " retained") || !strings.HasSuffix(line, " "+want) {
			t.Fatalf("line %d %q; want the live update %s", i+2, line, want)
		}
	}

	// The last update is the value now; -json marks it retained.
	sub = b.startSub(t, "-retained", "-json", "-count", "1", "sensor.*")
	msgs := parseSubJSON(t, sub.wait(t))
	if len(msgs) != 1 || !msgs[0].Retained || msgs[0].payload() != `text="`+strconv.Itoa(20+updates)+`"` {
		t.Fatalf("sub -retained -json: %+v; want the last update, retained", msgs)
	}

	// An empty -retain clears the value.
	b.pub(t, "", "-retain", "sensor.temp", "")
	b.pub(t, "", "-retain", "sensor.other", "o")
	sub = b.startSub(t, "-retained", "-raw", "-count", "1", "sensor.*")
	if out := sub.wait(t); out != "o\n" {
		t.Fatalf("after the clear: %q; want only the other topic's value", out)
	}
}

// -retain and -retained refuse what the bus would: descriptors, a queue
// group.
func TestCLIRetainUsage(t *testing.T) {
	b := startBusd(t)
	if _, errOut, err := b.run("", "pub", "-retain", "-attach", "/dev/null", "t", "x"); err == nil || !strings.Contains(errOut, "descriptors") {
		t.Fatalf("pub -retain -attach: %v %q; want a usage error about descriptors", err, errOut)
	}
	if _, errOut, err := b.run("", "sub", "-retained", "-queue", "g", "t"); err == nil || !strings.Contains(errOut, "queue group") {
		t.Fatalf("sub -retained -queue: %v %q; want a usage error", err, errOut)
	}
	if _, errOut, err := b.run("", "pub", "-retain", "_INBOX.1.x", "x"); err == nil || !strings.Contains(errOut, "retain refused") {
		t.Fatalf("pub -retain to an inbox: %v %q; want the broker's refusal", err, errOut)
	}
}
