package clientlib

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
)

func TestHeaderLookups(t *testing.T) {
	h := HeaderOf("a", "1", "b", "", "a", "2", "A", "3")
	if got := h.Get("a"); got != "1" {
		t.Errorf(`Get("a") = %q; want the first value, "1"`, got)
	}
	if got := h.Values("a"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf(`Values("a") = %q; want ["1" "2"]`, got)
	}
	if got := h.Values("A"); !slices.Equal(got, []string{"3"}) {
		t.Errorf(`Values("A") = %q; want ["3"]: keys keep their case`, got)
	}
	if v, ok := h.Lookup("b"); !ok || v != "" {
		t.Errorf(`Lookup("b") = %q, %v; want "", true`, v, ok)
	}
	if v, ok := h.Lookup("c"); ok || v != "" || h.Get("c") != "" || h.Values("c") != nil {
		t.Errorf(`Lookup("c") = %q, %v; want a missing key`, v, ok)
	}
	var none Header
	if none.Get("a") != "" || none.Values("a") != nil || none.Clone() != nil {
		t.Error("a nil Header is not empty")
	}
}

func TestHeaderEdits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Header)
		want Header
	}{
		{"Add to nil", func(h *Header) { *h = nil; h.Add("k", "v") }, HeaderOf("k", "v")},
		{"Add repeats", func(h *Header) { h.Add("a", "4") }, HeaderOf("a", "1", "b", "2", "a", "3", "a", "4")},
		{"Set keeps the first place", func(h *Header) { h.Set("a", "x") }, HeaderOf("a", "x", "b", "2")},
		{"Set a new key appends", func(h *Header) { h.Set("c", "x") }, HeaderOf("a", "1", "b", "2", "a", "3", "c", "x")},
		{"Set a later key", func(h *Header) { h.Set("b", "x") }, HeaderOf("a", "1", "b", "x", "a", "3")},
		{"Del removes every field", func(h *Header) { h.Del("a") }, HeaderOf("b", "2")},
		{"Del a missing key", func(h *Header) { h.Del("z") }, HeaderOf("a", "1", "b", "2", "a", "3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := HeaderOf("a", "1", "b", "2", "a", "3")
			tc.edit(&h)
			if !slices.Equal(h, tc.want) {
				t.Fatalf("got %v; want %v", h, tc.want)
			}
		})
	}
}

// A Clone is the caller's to change: adding to it must not write into the
// array of the Header it came from, which may be shared.
func TestHeaderClone(t *testing.T) {
	shared := make(Header, 1, 4)
	shared[0] = HeaderField{"a", "1"}
	c := shared.Clone()
	c.Add("b", "2")
	c[0].Value = "x"
	if got := shared[:2]; got[0].Value != "1" || got[1] != (HeaderField{}) {
		t.Fatalf("editing the clone changed the original's array: %v", got)
	}
}

func TestHeaderOfOddPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("HeaderOf with an odd number of strings did not panic")
		}
	}()
	HeaderOf(strings.Fields("a 1 b")...) // built at run time: staticcheck refuses an odd literal
}

// Encoding keeps the caller's order, repeated and interleaved keys
// included, and decoding gives back the same fields.
func TestHeaderWireRoundTrip(t *testing.T) {
	h := HeaderOf("b", "1", "a", "", "b", "2", "Bin", "\x00\xff", "a", strings.Repeat("v", 0xffff))
	enc, err := encodeHeader(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Check(); err != nil {
		t.Fatalf("the encoding is malformed: %v", err)
	}
	var keys []string
	for k := range enc.All() {
		keys = append(keys, string(k))
	}
	if want := []string{"b", "a", "b", "Bin", "a"}; !slices.Equal(keys, want) {
		t.Fatalf("encoded keys %q; want %q", keys, want)
	}
	if got := decodeHeader(enc); !slices.Equal(got, h) {
		t.Fatalf("decoded %.60v; want %.60v", got, h)
	}
}

func TestHeaderEncodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Header
		is   error
	}{
		{"empty key", HeaderOf("", "v"), nil},
		{"space in key", HeaderOf("bad key", "v"), nil},
		{"key too long", HeaderOf(strings.Repeat("k", wire.MaxKeyLen+1), "v"), nil},
		{"value of 64 KiB", HeaderOf("k", strings.Repeat("v", 0x10000)), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeHeader(nil, append(HeaderOf("ok", "1"), tc.h...))
			if err == nil {
				t.Fatal("encoded; want an error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("got %v; want one matching %v", err, tc.is)
			}
		})
	}
}

// A message without headers, most messages, costs no allocation for them.
func TestDecodeNoHeaderDoesNotAllocate(t *testing.T) {
	var h Header
	if n := testing.AllocsPerRun(100, func() { h = decodeHeader(nil) }); n != 0 || h != nil {
		t.Fatalf("decoding no headers: %v allocations, %v; want none, nil", n, h)
	}
	enc := wire.AppendField(wire.AppendField(nil, "a", "1"), "b", "2")
	if n := testing.AllocsPerRun(100, func() { h = decodeHeader(enc) }); n != 2 {
		t.Fatalf("decoding two fields: %v allocations; want 2 (the fields and one string)", n)
	}
}

// Repeated keys go through a broker in the order published, interleaved
// with other keys.
func TestHeaderThroughBroker(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	sub, err := c.SubscribeSync("hdr.>")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	want := HeaderOf("a", "1", "b", "x", "a", "2", "a", "")
	if err := c.PublishMsg(&Msg{Topic: "hdr.order", Header: want, Data: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	m := next(t, sub)
	if !slices.Equal(m.Header, want) {
		t.Fatalf("received %v; want %v", m.Header, want)
	}
	if got := m.Header.Values("a"); !slices.Equal(got, []string{"1", "2", ""}) {
		t.Fatalf(`Values("a") = %q; want ["1" "2" ""]`, got)
	}
}
