package sublist

import (
	"testing"

	"github.com/busd/busd/topics/topicstest"
)

// TestAdapterAgrees checks that the NATS adapter and busd's index give the
// same match counts on the benchmark workloads, so the benchmark compares
// like with like.
func TestAdapterAgrees(t *testing.T) {
	for _, w := range []topicstest.Workload{topicstest.Literal(5000), topicstest.Wildcard(5000)} {
		for _, cached := range []bool{true, false} {
			nats := NATS().New(w.Patterns, cached)
			busd := topicstest.Busd().New(w.Patterns, cached)
			for id := range w.Patterns {
				nats.Add(id)
				busd.Add(id)
			}
			for _, tp := range append(w.Topics, "no.such.topic") {
				if n, b := nats.Match(tp), busd.Match(tp); n != b {
					t.Fatalf("%s: %q: nats %d, busd %d", w.Name, tp, n, b)
				}
			}
			nats.Remove(0)
			busd.Remove(0)
			if n, b := nats.Match(w.Topics[0]), busd.Match(w.Topics[0]); n != b || n != w.PerTopic-1 {
				t.Fatalf("%s after remove: nats %d, busd %d; want %d", w.Name, n, b, w.PerTopic-1)
			}
		}
	}
}

// BenchmarkIndex runs topicstest's matrix for busd and NATS side by side.
func BenchmarkIndex(b *testing.B) {
	topicstest.Benchmark(b, topicstest.Busd(), NATS())
}
