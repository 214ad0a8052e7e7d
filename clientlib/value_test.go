package clientlib

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

type point struct {
	X, Y  int
	Label string `codec:"label"`
	Skip  string `codec:"-"`
	When  time.Time
	Raw   []byte
}

func TestValueRoundTripThroughBus(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	sub, err := c.SubscribeSync("shapes.>")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	when := time.Date(2026, 11, 22, 1, 2, 3, 4, time.FixedZone("X", 3600))
	in := point{X: 3, Y: -4, Label: "p", Skip: "not sent", When: when, Raw: []byte{0, 1, 0xff}}
	if err := c.PublishValue("shapes.point", in); err != nil {
		t.Fatal(err)
	}
	m := next(t, sub)
	if !m.IsValue() || m.Header.Get(ContentTypeHeader) != ContentTypeMsgpack {
		t.Fatalf("header %v: want the msgpack content type", m.Header)
	}
	var out point
	if err := m.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if !out.When.Equal(when) || out.When.Location() != time.UTC {
		t.Errorf("time %v: want %v in UTC", out.When, when)
	}
	out.When = time.Time{}
	want := in
	want.Skip, want.When = "", time.Time{}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("decoded %+v; want %+v", out, want)
	}

	// Into any: the types the package documentation promises.
	var generic any
	if err := m.Decode(&generic); err != nil {
		t.Fatal(err)
	}
	g, ok := generic.(map[string]any)
	if !ok {
		t.Fatalf("decoded into any as %T; want map[string]any", generic)
	}
	if g["X"] != int64(3) || g["Y"] != int64(-4) || g["label"] != "p" || !reflect.DeepEqual(g["Raw"], []byte{0, 1, 0xff}) {
		t.Errorf("generic decode %#v", g)
	}
	if _, ok := g["Skip"]; ok {
		t.Error(`a codec:"-" field was sent`)
	}
}

func TestValueTypeMapping(t *testing.T) {
	cases := []struct {
		in   any
		want any // decoded into any
	}{
		{nil, nil},
		{true, true},
		{int8(-5), int64(-5)},
		{uint16(7), int64(7)},
		{uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{float32(1.5), float64(1.5)},
		{2.25, 2.25},
		{"héllo", "héllo"},
		{[]byte("bin"), []byte("bin")},
		{[]int{1, 2}, []any{int64(1), int64(2)}},
		{[2]string{"a", "b"}, []any{"a", "b"}},
		{map[string]int{"k": 1}, map[string]any{"k": int64(1)}},
		{(*point)(nil), nil},
		{[]int(nil), nil},
		{map[string]int(nil), nil},
		{struct {
			A int `json:"a"`
			F func()
		}{A: 1}, map[string]any{"a": int64(1)}},
	}
	for _, tc := range cases {
		b, err := EncodeValue(tc.in)
		if err != nil {
			t.Fatalf("encode %#v: %v", tc.in, err)
		}
		var got any
		if err := DecodeValue(b, &got); err != nil {
			t.Fatalf("decode %#v: %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%T %#v came back as %T %#v; want %T %#v", tc.in, tc.in, got, got, tc.want, tc.want)
		}
	}
}

func TestValueErrors(t *testing.T) {
	if _, err := EncodeValue(complex(1, 2)); !errors.Is(err, ErrEncode) || !strings.Contains(err.Error(), "complex128") {
		t.Fatalf("encoding a complex: %v; want ErrEncode naming the type", err)
	}
	// A failed encode must not poison the pooled encoder for the next one.
	if b, err := EncodeValue("fine"); err != nil || len(b) == 0 {
		t.Fatalf("encode after a failure: %v", err)
	}
	var n int
	if err := DecodeValue([]byte{0xc1}, &n); !errors.Is(err, ErrDecode) { // 0xc1 is never used
		t.Fatalf("decoding garbage: %v; want ErrDecode", err)
	}
	m := &Msg{Header: HeaderOf(ContentTypeHeader, "text/plain"), Data: []byte("hi")}
	var s string
	if err := m.Decode(&s); !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "text/plain") {
		t.Fatalf("decoding text/plain: %v; want ErrDecode naming the type", err)
	}
	b, _ := EncodeValue("no header")
	if err := (&Msg{Data: b}).Decode(&s); err != nil || s != "no header" {
		t.Fatalf("a payload without the header is tried as msgpack: %q, %v", s, err)
	}
	// A hostile length prefix: an array claiming 2^32-1 elements in 5 bytes.
	var xs []int
	if err := DecodeValue([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, &xs); !errors.Is(err, ErrDecode) {
		t.Fatalf("decoding a lying array header: %v; want ErrDecode", err)
	}
}

func TestRequestValue(t *testing.T) {
	path, _ := startBus(t)
	svc := connect(t, path)
	type sum struct{ A, B int }
	if _, err := svc.Subscribe("math.sum", func(m *Msg) {
		var s sum
		if err := m.Decode(&s); err != nil {
			m.RespondValue(err.Error())
			return
		}
		m.RespondValue(s.A + s.B)
	}); err != nil {
		t.Fatal(err)
	}
	flush(t, svc)
	c := connect(t, path)
	var got int
	r, err := c.RequestValue(testCtx(t), "math.sum", sum{A: 40, B: 2}, &got)
	if err != nil {
		t.Fatal(err)
	}
	if got != 42 || !r.IsValue() {
		t.Fatalf("got %d (header %v); want 42 as msgpack", got, r.Header)
	}
	var wrong struct{ Z []string }
	if _, err := c.RequestValue(testCtx(t), "math.sum", sum{1, 2}, &wrong); !errors.Is(err, ErrDecode) {
		t.Fatalf("decoding an int reply into a struct: %v; want ErrDecode", err)
	}
	if _, err := c.RequestValue(testCtx(t), "math.nothing", 1, &got); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("got %v; want ErrNoResponders", err)
	}
}

func BenchmarkEncodeValue(b *testing.B) {
	v := point{X: 1, Y: 2, Label: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeValue(v); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeValue feeds hostile payloads to Decode: it must fail with
// ErrDecode, not panic or allocate by a length prefix, whatever the bytes.
func FuzzDecodeValue(f *testing.F) {
	for _, v := range []any{nil, 1, "s", []byte{1}, map[string]any{"a": []any{1.5, true}}, point{X: 1}} {
		b, err := EncodeValue(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // an array claiming 4 G elements
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff}) // a map claiming 2 G pairs
	f.Fuzz(func(t *testing.T, b []byte) {
		var generic any
		if err := DecodeValue(b, &generic); err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("error %v does not match ErrDecode", err)
		}
		var p point
		if err := DecodeValue(b, &p); err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("error %v does not match ErrDecode", err)
		}
	})
}

func TestSetValueKeepsHeaders(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	sub, err := c.SubscribeSync("typed.hdr")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	m := &Msg{Topic: "typed.hdr", Header: HeaderOf("Trace", "42")}
	if err := m.SetValue(map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	got := next(t, sub)
	var v map[string]int
	if err := got.Decode(&v); err != nil || v["n"] != 7 || got.Header.Get("Trace") != "42" || !got.IsValue() {
		t.Fatalf("got %v (%v) with header %v", v, err, got.Header)
	}
	if err := (&Msg{}).SetValue(complex64(1)); !errors.Is(err, ErrEncode) {
		t.Fatalf("SetValue of a complex number: %v; want ErrEncode", err)
	}
	for _, ct := range []string{"application/msgpack", "Application/MsgPack", "application/msgpack; v=1"} {
		if !(&Msg{Header: HeaderOf(ContentTypeHeader, ct)}).IsValue() {
			t.Errorf("%q not taken as msgpack", ct)
		}
	}
}
