package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/busd/busd/clientlib"
)

// subJSON is a line of `bus sub -json`, decoded with its payload fields
// left raw, so that a test sees which one is there and its exact JSON.
type subJSON struct {
	Topic  string `json:"topic"`
	Origin struct {
		Conn          uint64
		PID, UID, GID int
	} `json:"origin"`
	Reply   string          `json:"reply"`
	Headers [][2]string     `json:"headers"`
	FDs     int             `json:"fds"`
	Value   json.RawMessage `json:"value"`
	Text    *string         `json:"text"`
	Base64  *string         `json:"base64"`

	Retained bool `json:"retained"`
}

// payload says which payload field a line has, and its JSON.
func (s *subJSON) payload() string {
	var fields []string
	if s.Value != nil {
		fields = append(fields, "value="+string(s.Value))
	}
	if s.Text != nil {
		b, _ := json.Marshal(*s.Text)
		fields = append(fields, "text="+string(b))
	}
	if s.Base64 != nil {
		fields = append(fields, "base64="+*s.Base64)
	}
	return strings.Join(fields, " ")
}

// parseSubJSON decodes the output of `bus sub -json`: one object a line,
// each checked to have exactly the known fields.
func parseSubJSON(t *testing.T, out string) []subJSON {
	t.Helper()
	var msgs []subJSON
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var m subJSON
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d is not a message object: %v\n%s", i+1, err, line)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// pubPID runs `bus pub ARGS` and returns its pid: the origin its message
// must carry.
func (b *busd) pubPID(t *testing.T, stdin string, args ...string) int {
	t.Helper()
	cmd := b.bus(append([]string{"pub"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("bus pub %q: %v\n%s", args, err, errOut.String())
	}
	return cmd.Process.Pid
}

// sub -json prints one object per message with its topic, origin, headers
// (repeated keys in order) and payload: pub -json's msgpack as the same
// JSON, UTF-8 as text, other bytes, or msgpack that is not, as base64.
func TestCLIPubSubJSON(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-json", "-count", "8", "j.>")
	const doc = `{"a":1,"b":[true,"x",null],"c":{"f":1.5,"i":-7},"u":18446744073709551615,"h":"<&>"}`
	const sorted = `{"a":1,"b":[true,"x",null],"c":{"f":1.5,"i":-7},"h":"<&>","u":18446744073709551615}`
	pids := []int{
		b.pubPID(t, "", "-json", "j.doc", doc),
		b.pubPID(t, "[1,2]\n\"s\"\nnull\n", "-json", "-H", "k=v", "j.lines"), // one value a line
		b.pubPID(t, "", "-H", "a=1", "-H", "b=x", "-H", "a=2", "j.rep", "x"),
		b.pubPID(t, "", "j.bin", "\xff\xfe"),
		b.pubPID(t, "", "-H", "Content-Type=application/msgpack", "j.bad", "\xc1"), // a byte msgpack never uses
		b.pubPID(t, "", "j.empty", ""),
	}
	want := []struct {
		pub                     int // which of the pubs above sent it
		topic, headers, payload string
	}{
		{0, "j.doc", "[[Content-Type application/msgpack]]", "value=" + sorted},
		{1, "j.lines", "[[k v] [Content-Type application/msgpack]]", `value=[1,2]`},
		{1, "j.lines", "[[k v] [Content-Type application/msgpack]]", `value="s"`},
		{1, "j.lines", "[[k v] [Content-Type application/msgpack]]", `value=null`},
		{2, "j.rep", "[[a 1] [b x] [a 2]]", `text="x"`},
		{3, "j.bin", "[]", "base64=//4="},
		{4, "j.bad", "[[Content-Type application/msgpack]]", "base64=wQ=="},
		{5, "j.empty", "[]", `text=""`},
	}
	out := sub.wait(t)
	got := parseSubJSON(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d messages; want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Topic != w.topic || fmtHeaders(g.Headers) != w.headers || g.payload() != w.payload {
			t.Errorf("message %d: %s %s %s; want %s %s %s", i, g.Topic, fmtHeaders(g.Headers), g.payload(), w.topic, w.headers, w.payload)
		}
		if o := g.Origin; o.PID != pids[w.pub] || o.UID != os.Getuid() || o.GID != os.Getgid() || o.Conn == 0 {
			t.Errorf("message %d: origin %+v; want pid %d, uid %d, gid %d and a connection", i, o, pids[w.pub], os.Getuid(), os.Getgid())
		}
		if g.Reply != "" || g.FDs != 0 {
			t.Errorf("message %d: reply %q, %d fds; want neither", i, g.Reply, g.FDs)
		}
	}
	// The keys come in the order the docs show, without HTML escapes.
	first, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(first, `{"topic":"j.doc","origin":{"conn":`) ||
		!strings.HasSuffix(first, `,"headers":[["Content-Type","application/msgpack"]],"value":`+sorted+`}`) {
		t.Errorf("the first line is not in the documented shape:\n%s", first)
	}
}

func fmtHeaders(h [][2]string) string {
	parts := make([]string, len(h))
	for i, f := range h {
		parts[i] = "[" + f[0] + " " + f[1] + "]"
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Repeated headers end to end: `bus pub -H a=1 -H a=2` reaches
// `bus sub -json` with both values, in order.
func TestCLIRepeatedHeaderJSON(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-json", "-count", "1", "t")
	b.pub(t, "", "-H", "a=1", "-H", "a=2", "t", "x")
	got := parseSubJSON(t, sub.wait(t))
	if len(got) != 1 || fmtHeaders(got[0].Headers) != "[[a 1] [a 2]]" {
		t.Fatalf("got %+v; want one message with headers [[a 1] [a 2]]", got)
	}
}

// A message's reply topic and files show in its object; the files' content
// does not (-cat-fds does not go with -json).
func TestCLISubJSONReplyAndFiles(t *testing.T) {
	b := startBusd(t)
	sub := b.startSub(t, "-json", "-count", "1", "r")
	c := connectTo(t, b)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := &clientlib.Msg{Topic: "r", Reply: "r.answers", Data: []byte("hi"), Files: []*os.File{f, f}}
	m.Header.Add("trace", "42")
	if err := c.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	got := parseSubJSON(t, sub.wait(t))
	if len(got) != 1 {
		t.Fatalf("%d messages; want 1", len(got))
	}
	g := got[0]
	if g.Reply != "r.answers" || g.FDs != 2 || fmtHeaders(g.Headers) != "[[trace 42]]" || g.payload() != `text="hi"` || g.Origin.PID != os.Getpid() {
		t.Fatalf("got %+v; want reply r.answers, 2 fds, header trace=42, text hi, from pid %d", g, os.Getpid())
	}
}

// pub -H keeps what it is given, in order: the plain output of sub shows
// a repeated key as often as it came, where it came.
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
