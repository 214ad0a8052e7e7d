package bus

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// INFO announces the slow-consumer policy's bounds under keys that name
// their units, timeouts rounded up to a whole unit, and the keys that may
// be 0 present even then.
func TestInfoAnnouncesSlowConsumerBounds(t *testing.T) {
	_, path := testBroker(t, func(c *Config) {
		c.WriteTimeout = 3*time.Second + time.Microsecond
		c.FrameTimeout = 7 * time.Second
		c.StallBudget = 0
		c.MaxPendingFDs = 130
	})
	c := dialRaw(t, path)
	c.send(helloFrame(t))
	f := c.next()
	var info map[string]any
	if err := wire.DecodeBody(f.Payload, &info); f.Op != wire.OpInfo || err != nil {
		t.Fatalf("got %v, %v; want INFO", f.Op, err)
	}
	want := map[string]uint64{
		"write_timeout_ms":  3001,
		"frame_timeout_ms":  7000,
		"stall_budget_us":   0,
		"lag_bytes":         1 << 20,
		"lag_fds":           32,
		"lagging_max_bytes": 2 << 20,
		"lagging_max_fds":   65,
		"max_pending_fds":   130,
	}
	for k, v := range want {
		got, ok := info[k]
		if !ok || fmt.Sprint(got) != strconv.FormatUint(v, 10) {
			t.Errorf("INFO %s = %v (present %v); want %d", k, got, ok, v)
		}
	}
}

// dump is one frame of PROTOCOL.md section 10's exchange.
type dump struct {
	title string // such as "C->B HELLO 40 bytes"
	b     []byte
}

var dumpTitle = regexp.MustCompile(`^(C->B|B->C) .* (\d+) bytes$`)

// documentedExchange reads the frames of PROTOCOL.md section 10 from their
// hexdumps (encoding/hex.Dump's format).
func documentedExchange(t *testing.T) (dumps []dump, keysSentence []string) {
	t.Helper()
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n## 10. ")
	if !ok {
		t.Fatal("PROTOCOL.md has no section 10")
	}
	// The broker request after it carries a pid and a time of its run:
	// it is checked by hand, not replayed.
	sec, _, _ = strings.Cut(sec, "\n### A broker request")
	if strings.Contains(sec, "_test.go:") {
		t.Error("section 10 has a test's output pasted into it")
	}
	keysSentence = infoKeys.FindStringSubmatch(sec)
	for _, line := range strings.Split(sec, "\n") {
		if m := dumpTitle.FindStringSubmatch(line); m != nil {
			dumps = append(dumps, dump{title: line})
			continue
		}
		if len(dumps) == 0 || len(line) < 10 || !isHexOffset(line[:8]) {
			continue
		}
		for _, field := range strings.Fields(line[10:]) {
			if strings.HasPrefix(field, "|") {
				break
			}
			b, err := hex.DecodeString(field)
			if err != nil || len(b) != 1 {
				t.Fatalf("bad hexdump line %q", line)
			}
			dumps[len(dumps)-1].b = append(dumps[len(dumps)-1].b, b[0])
		}
	}
	for _, d := range dumps {
		n, _ := strconv.Atoi(dumpTitle.FindStringSubmatch(d.title)[2])
		if n != len(d.b) {
			t.Fatalf("%q: the dump has %d bytes", d.title, len(d.b))
		}
	}
	return dumps, keysSentence
}

func isHexOffset(s string) bool {
	_, err := strconv.ParseUint(s, 16, 32)
	return err == nil
}

// The byte-for-byte exchange of PROTOCOL.md section 10 is what a broker
// with the default configuration and the Go encoders really do: the
// client's frames are what bus/wire encodes, and replayed against a fresh
// broker they get the documented answers, but for the pid, uid and gid of
// the MSG's origin (this process's). On a difference the test prints the
// real frame in the document's format, to paste there.
func TestDocumentedExchange(t *testing.T) {
	dumps, keysSentence := documentedExchange(t)
	hello, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: "demo"})
	sent := [][]byte{
		wire.AppendControl(nil, wire.OpHello, 0, hello),
		wire.AppendSub(nil, 1, "app.*", "", 0),
		wire.AppendControl(nil, wire.OpPing, 7, nil),
		wire.AppendPub(nil, "app.hi", "", wire.AppendField(nil, "k", "v"), []byte("hello"), 0),
		wire.AppendPub(nil, "a..b", "", nil, nil, 0),
	}
	_, path := testBroker(t, func(c *Config) { c.Limits = wire.DefaultLimits })
	c := dialRaw(t, path)
	for _, d := range dumps {
		if strings.HasPrefix(d.title, "C->B") {
			if len(sent) == 0 || !bytes.Equal(sent[0], d.b) {
				t.Fatalf("%q is not what bus/wire encodes", d.title)
			}
			sent = sent[1:]
			c.send(d.b)
			continue
		}
		c.sock.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := c.in.Next(nil)
		if err != nil {
			t.Fatalf("reading %q: %v", d.title, err)
		}
		got := bytes.Clone(c.in.Raw())
		if f.Op == wire.OpMsg {
			o := got[wire.HeaderLen:]
			if binary.BigEndian.Uint32(o[8:]) != uint32(os.Getpid()) || binary.BigEndian.Uint32(o[12:]) != uint32(os.Getuid()) {
				t.Errorf("the MSG's origin %x is not this process's", o[:wire.OriginLen])
			}
			copy(o[8:wire.OriginLen], d.b[wire.HeaderLen+8:]) // the document's pid, uid and gid
		}
		if !bytes.Equal(got, d.b) {
			t.Errorf("%q differs; the broker sent:\n%s %v %d bytes\n%s", d.title, strings.Fields(d.title)[0], f.Op, len(got), hex.Dump(got))
		}
	}
	if len(sent) != 0 {
		t.Fatalf("the document leaves out %d of the client's frames", len(sent))
	}
	// The prose before the dumps counts INFO's keys too.
	info := dumps[1].b[wire.HeaderLen:]
	if len(keysSentence) != 3 || info[0] != 0xde ||
		keysSentence[1] != strconv.Itoa(int(binary.BigEndian.Uint16(info[1:]))) ||
		strings.ReplaceAll(keysSentence[2], " ", "") != hex.EncodeToString(info[:3]) {
		t.Errorf("section 10 says %q of INFO's map; it begins % x", keysSentence, info[:3])
	}
}

// infoKeys is section 10's sentence on INFO's map: its count of keys and
// its first three bytes.
var infoKeys = regexp.MustCompile("INFO's map has (\\d+)\\s+keys, so it is a map 16 \\(`([0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2})`\\)")
