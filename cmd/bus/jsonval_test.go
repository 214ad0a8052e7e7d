package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
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
