package wire

import (
	"errors"
	"testing"
)

func TestDecodeWillRequest(t *testing.T) {
	good, err := AppendBody(nil, &WillRequest{Topic: "a.b", Headers: AppendField(nil, "k", "v"), Payload: []byte{0, 1}, Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := DecodeWillRequest(good)
	if err != nil || w.Topic != "a.b" || string(w.Payload) != "\x00\x01" || !w.Retain {
		t.Fatalf("decoded %+v, %v", w, err)
	}
	if v, _ := Headers(w.Headers).Get("k"); v != "v" {
		t.Fatalf("headers %q", w.Headers)
	}
	if w, err := DecodeWillRequest(nil); err != nil || w.Topic != "" {
		t.Fatalf("empty payload: %+v, %v; want a clear", w, err)
	}
	for name, b := range map[string][]byte{
		"array":    {0x91, 0x01},
		"trailing": append(append([]byte(nil), good...), 0xc0),
		"too long": make([]byte, MaxWillRequest+1),
		"bad type": {0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xc3},
	} {
		if _, err := DecodeWillRequest(b); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v; want ErrBadRequest", name, err)
		}
	}
}
