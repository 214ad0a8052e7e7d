package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// mp builds msgpack by hand: strings become fixstr, str8 or str16 by their
// length, ints and runes single bytes, and byte slices go in as they are.
func mp(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			switch {
			case len(p) < 32:
				b = append(b, 0xa0|byte(len(p)))
			case len(p) < 256:
				b = append(b, 0xd9, byte(len(p)))
			default:
				b = append(b, 0xda, byte(len(p)>>8), byte(len(p)))
			}
			b = append(b, p...)
		case int:
			b = append(b, byte(p))
		case rune:
			b = append(b, byte(p))
		case []byte:
			b = append(b, p...)
		}
	}
	return b
}

func TestDecodeHelloAccepts(t *testing.T) {
	encoded, _ := AppendBody(nil, &Hello{Version: 1, Name: "demo"})
	name255 := strings.Repeat("n", MaxNameLen)
	cases := []struct {
		name    string
		in      []byte
		version uint64
		client  string
	}{
		{"as the Go client encodes it", encoded, 1, "demo"},
		{"version only", mp(0x81, "version", 1), 1, ""},
		{"keys in another order", mp(0x82, "version", 1, "name", "x"), 1, "x"},
		{"uint8", mp(0x81, "version", 0xcc, 1), 1, ""},
		{"uint16", mp(0x81, "version", 0xcd, 0, 1), 1, ""},
		{"uint32", mp(0x81, "version", 0xce, 0, 0, 0, 1), 1, ""},
		{"uint64", mp(0x81, "version", 0xcf, 0, 0, 0, 0, 0, 0, 0, 1), 1, ""},
		{"int8", mp(0x81, "version", 0xd0, 1), 1, ""},
		{"int64", mp(0x81, "version", 0xd3, 0, 0, 0, 0, 0, 0, 0, 1), 1, ""},
		{"a version the broker refuses is still well-formed", mp(0x81, "version", 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 1<<64 - 1, ""},
		{"map16", mp(0xde, 0, 1, "version", 1), 1, ""},
		{"map32", mp(0xdf, 0, 0, 0, 1, "version", 1), 1, ""},
		{"str8 key", mp(0x81, 0xd9, 7, []byte("version"), 1), 1, ""},
		{"empty name", mp(0x82, "name", "", "version", 1), 1, ""},
		{"longest name", mp(0x82, "name", name255, "version", 1), 1, name255},
		{"fd_payloads false", mp(0x82, "version", 1, "fd_payloads", 0xc2), 1, ""},
		{"unknown keys with any values", mp(0x84, "version", 1,
			"a", 0x93, 0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x82, "x", 1, "x", 2, // nested duplicates are not the HELLO's
			"b", 0xc4, 2, 0xff, 0xff, // bin
			"c", 0xd6, 0xff, 0, 0, 0, 0), 1, ""}, // timestamp ext
	}
	if h, err := DecodeHello(mp(0x82, "fd_payloads", 0xc3, "version", 1)); err != nil || !h.FDPayloads {
		t.Errorf("fd_payloads true: got %+v, %v", h, err)
	}
	for _, c := range cases {
		h, err := DecodeHello(c.in)
		if err != nil || h.Version != c.version || h.Name != c.client {
			t.Errorf("%s: got %+v, %v; want version %d name %q", c.name, h, err, c.version, c.client)
		}
	}
}

func TestDecodeHelloRefuses(t *testing.T) {
	valid := mp(0x81, "version", 1)
	cases := []struct {
		name string
		in   []byte
		text string
	}{
		{"empty", nil, "payload is empty"},
		{"never msgpack", []byte{0xc1}, "not well-formed"},
		{"not a map", mp(0x91, 1), "payload is a msgpack array"},
		{"a str", mp("version"), "payload is a msgpack str"},
		{"trailing byte", mp(valid, 0), "goes on for 1 bytes after its map"},
		{"two maps", mp(valid, valid), "goes on for 10 bytes after its map"},
		{"bin key", mp(0x81, 0xc4, 7, []byte("version"), 1), "key 1 is a msgpack bin; keys must be str"},
		{"integer key", mp(0x82, "version", 1, 7, 1), "key 2 is a msgpack integer"},
		{"version twice", mp(0x82, "version", 1, "version", 1), `has the key "version" twice`},
		{"name twice", mp(0x83, "name", "a", "version", 1, "name", "b"), `has the key "name" twice`},
		{"unknown key twice", mp(0x83, "x", 1, "version", 1, "x", 1), `has the key "x" twice`},
		{"version nil", mp(0x81, "version", 0xc0), "version is a msgpack nil"},
		{"version str", mp(0x81, "version", "1"), "version is a msgpack str"},
		{"version float", mp(0x81, "version", 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), "version is a msgpack float"},
		{"version bool", mp(0x81, "version", 0xc3), "version is a msgpack bool"},
		{"version negative fixint", mp(0x81, "version", 0xff), "version is a msgpack negative integer"},
		{"version negative int8", mp(0x81, "version", 0xd0, 0xff), "version is a msgpack negative integer"},
		{"no version", mp(0x81, "name", "x"), "has no version"},
		{"empty map", mp(0x80), "has no version"},
		{"name bin", mp(0x82, "version", 1, "name", 0xc4, 1, 'x'), "name is a msgpack bin"},
		{"name nil", mp(0x82, "version", 1, "name", 0xc0), "name is a msgpack nil"},
		{"name too long", mp(0x82, "version", 1, "name", strings.Repeat("n", MaxNameLen+1)), "name is 256 bytes; the limit is 255"},
		{"fd_payloads integer", mp(0x82, "version", 1, "fd_payloads", 1), "fd_payloads is a msgpack integer; it must be a bool"},
		{"fd_payloads nil", mp(0x82, "version", 1, "fd_payloads", 0xc0), "fd_payloads is a msgpack nil"},
		{"fd_payloads twice", mp(0x83, "fd_payloads", 0xc3, "version", 1, "fd_payloads", 0xc2), `has the key "fd_payloads" twice`},
		{"fewer entries than announced", mp(0x82, "version", 1), "ends inside key 2"},
		{"key cut short", mp(0x81, 0xa7, []byte("vers")), "ends inside key 1"},
		{"value cut short", mp(0x81, "version", 0xcd, 0), `ends inside the value of key "version"`},
		{"name cut short", mp(0x82, "version", 1, "name", 0xa5, 'x'), `ends inside the value of key "name"`},
		{"unknown value malformed", mp(0x82, "version", 1, "x", 0x91, 0xc1), `value of key "x" is not well-formed`},
		{"unknown value cut short", mp(0x82, "version", 1, "x", 0xdd, 0xff, 0xff, 0xff, 0xff), `value of key "x" is not well-formed`},
		{"a map announcing 2^32-1 entries", mp(0xdf, 0xff, 0xff, 0xff, 0xff, "version", 1), "ends inside key 2"},
	}
	for _, c := range cases {
		_, err := DecodeHello(c.in)
		var we *Error
		if !errors.As(err, &we) || we.Code != CodeBadFrame || !strings.Contains(we.Text, c.text) {
			t.Errorf("%s: got %v; want bad frame containing %q", c.name, err, c.text)
		}
	}
}

// The codec the Go client encodes HELLO with and DecodeHello agree.
func TestDecodeHelloRoundTrip(t *testing.T) {
	for _, in := range []Hello{{Version: 1}, {Version: 1, Name: "editor"}, {Version: 1, FDPayloads: true}, {Version: 1<<64 - 1, Name: strings.Repeat("é", 127)}} {
		b, err := AppendBody(nil, &in)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := DecodeHello(b); err != nil || out != in {
			t.Errorf("%+v came back as %+v, %v", in, out, err)
		}
	}
}

func TestSkipValue(t *testing.T) {
	whole := [][]byte{
		{0xc0}, {0xc2}, {0x7f}, {0xe0}, {0xcc, 1}, {0xd1, 0, 1}, {0xca, 0, 0, 0, 0},
		{0xd4, 1, 2}, {0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{0xc7, 2, 5, 'a', 'b'}, {0xc8, 0, 1, 5, 'a'}, {0xc5, 0, 2, 'a', 'b'},
		{0xda, 0, 1, 'a'}, {0x92, 0x80, 0x91, 0x90}, {0xdc, 0, 2, 1, 2}, {0x81, 0xa1, 'k', 0x81, 0x01, 0x02},
	}
	for _, b := range whole {
		n, ok := skipValue(append(bytes.Clone(b), 0xaa, 0xbb))
		if !ok || n != len(b) {
			t.Errorf("% x: skipped %d, %v; want %d", b, n, ok, len(b))
		}
		if _, ok := skipValue(b[:len(b)-1]); ok {
			t.Errorf("% x cut short: skipped it", b)
		}
	}
}
