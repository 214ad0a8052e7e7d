package main

import (
	"encoding/base64"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/busd/busd/clientlib"
)

func TestParseJSONNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"1", int64(1)},
		{"-9223372036854775808", int64(math.MinInt64)},
		{"9223372036854775808", uint64(math.MaxInt64) + 1},
		{"18446744073709551616", 18446744073709551616.0},
		{"1.0", 1.0},
		{"1e3", 1000.0},
		{`{"a":[1,2.5,{"b":-3}]}`, map[string]any{"a": []any{int64(1), 2.5, map[string]any{"b": int64(-3)}}}},
	} {
		got, err := parseJSON([]byte(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseJSON(%s) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	for in, want := range map[string]string{
		"":      "no value",
		"1e400": "out of range",
		"1 2":   "more after the value",
		"{":     "unexpected EOF",
	} {
		if _, err := parseJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseJSON(%q): err %v; want one saying %q", in, err, want)
		}
	}
}

// A msgpack payload JSON cannot hold (a NaN) is shown as bytes, with a
// warning, in the object as on a line of its own; the object keeps the
// rest of the message.
func TestJSONMessageNaN(t *testing.T) {
	nan, err := clientlib.EncodeValue(math.NaN())
	if err != nil {
		t.Fatal(err)
	}
	m := &clientlib.Msg{Topic: "n", Header: clientlib.HeaderOf(clientlib.ContentTypeHeader, clientlib.ContentTypeMsgpack, "x", "1"), Data: nan}
	var warn strings.Builder
	p := newJSONPrinter(&warn)
	want := `{"topic":"n","origin":{"conn":0,"pid":0,"uid":0,"gid":0},"headers":[["Content-Type","application/msgpack"],["x","1"]],"base64":"` +
		base64.StdEncoding.EncodeToString(nan) + "\"}\n"
	if got := string(p.message(m)); got != want {
		t.Errorf("message:\n%s\nwant:\n%s", got, want)
	}
	if got, want := string(p.line(m)), `"`+base64.StdEncoding.EncodeToString(nan)+"\"\n"; got != want {
		t.Errorf("line: %s; want %s", got, want)
	}
	if n := strings.Count(warn.String(), "showing the payload as bytes"); n != 2 {
		t.Errorf("%d warnings; want one each:\n%s", n, warn.String())
	}
}
