package topicstest

import (
	"testing"

	"github.com/busd/busd/topics"
)

func TestWorkloadsMatchAsDocumented(t *testing.T) {
	for _, n := range []int{1, 4, 1000, 20000} {
		for _, w := range []Workload{Literal(n), Wildcard(n)} {
			if len(w.Patterns) != n || len(w.Topics) == 0 || len(w.Topics) > MaxTopics {
				t.Fatalf("%s(%d): %d patterns, %d topics", w.Name, n, len(w.Patterns), len(w.Topics))
			}
			x := topics.NewIndex[int]()
			for i, p := range w.Patterns {
				if err := x.Add(p, "", i); err != nil {
					t.Fatal(err)
				}
			}
			for _, tp := range w.Topics {
				if got := len(x.Match(tp).Plain); got != w.PerTopic {
					t.Fatalf("%s(%d): topic %q matches %d; want %d", w.Name, n, tp, got, w.PerTopic)
				}
			}
		}
	}
}
