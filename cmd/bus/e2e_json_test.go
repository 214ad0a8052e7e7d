package main

import (
	"strings"
	"testing"
)

// pub -json sends msgpack that sub -json shows as the same JSON; payloads
// that are not msgpack, or claim to be and are not, show as JSON strings,
// base64 when not UTF-8.
func TestCLIPubSubJSON(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-json", "-count", "5", "j")
	const doc = `{"a":1,"b":[true,"x",null],"c":{"f":1.5,"i":-7},"u":18446744073709551615,"h":"<&>"}`
	const sorted = `{"a":1,"b":[true,"x",null],"c":{"f":1.5,"i":-7},"h":"<&>","u":18446744073709551615}`
	b.pub(t, "", "-json", "j", doc)
	b.pub(t, "[1,2]\n\"s\"\n", "-json", "-H", "k=v", "j") // one value a line
	b.pub(t, "", "j", "\xff\xfe")
	b.pub(t, "", "-H", "Content-Type=application/msgpack", "j", "\xc1") // a byte msgpack never uses
	want := sorted + "\n[1,2]\n\"s\"\n\"//4=\"\n\"wQ==\"\n"
	if out := sub.wait(t); out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

// -H headers arrive in the order given, a repeated key as often as it was
// given, and the plain output shows them so.
func TestCLIPubHeaders(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-count", "3", "h")
	b.pub(t, "", "-H", "k=v", "-H", "trace=a=b", "h", "x")
	b.pub(t, "", "-H", "k=v", "-json", "h", "{}")
	b.pub(t, "", "-H", "a=1", "-H", "b=x", "-H", "a=2", "-H", "a=1", "h", "y")
	out := sub.wait(t)
	for _, want := range []string{" [k=v trace=a=b] x\n", " [k=v Content-Type=application/msgpack] ", " [a=1 b=x a=2 a=1] y\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
