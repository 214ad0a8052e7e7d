package main

import (
	"strings"
	"testing"
)

func TestPairsSystemsOfOneWorkload(t *testing.T) {
	in := `goos: linux
BenchmarkIndex/match/literal/1k/cached/single/busd-2   	 100	        15.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkIndex/match/literal/1k/cached/single/nats-2   	 100	        45.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkIndex/memory/literal/busd-2   	 3	 127160928 ns/op	       300.0 B/sub	32600733 B/op	  400548 allocs/op
BenchmarkIndex/memory/literal/nats-2   	 2	 270578493 ns/op	       750.0 B/sub	100591936 B/op	 1300547 allocs/op
PASS`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| match/literal/1k/cached/single | 15.0 ns/op | nats: 45.0 | 3.0× | 0.00 | 0.00 |",
		"| memory/literal | 300 B/sub | nats: 750 | 2.5× |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
