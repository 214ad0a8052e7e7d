package topics_test

import (
	"strconv"
	"testing"

	"github.com/busd/busd/topics"
)

// manyGroups is the number of queue groups, all on one pattern and joined by
// one connection, that once made a single publish take seconds.
const manyGroups = 30_000

// groupLayout is where each queue group of a benchmark subscribes: every
// group joins every pattern of the layout, so a topic matching them all
// merges the groups by name across them.
type groupLayout struct {
	name     string
	patterns []string
}

var groupLayouts = []groupLayout{
	{"one-pattern", []string{"svc.jobs"}},
	{"two-patterns", []string{"svc.jobs", "svc.*"}},
}

// BenchmarkIndexGroups times adding and then removing queue groups under
// distinct names, and matching a topic they all reach with the cache off, so
// that every match builds its Result. An op handles all the groups; the
// few-group sizes stand for the common path.
func BenchmarkIndexGroups(b *testing.B) {
	for _, n := range []int{1, 3, manyGroups} {
		names := make([]string, n)
		for i := range names {
			names[i] = "g" + strconv.Itoa(i)
		}
		for _, l := range groupLayouts {
			suffix := "/" + l.name + "/" + strconv.Itoa(n)
			b.Run("add+remove"+suffix, func(b *testing.B) {
				b.ReportAllocs()
				x := topics.NewIndex[int]()
				for b.Loop() {
					addGroups(b, x, l.patterns, names)
					for _, p := range l.patterns {
						for i, g := range names {
							if err := x.Remove(p, g, i); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
			})
			b.Run("match-uncached"+suffix, func(b *testing.B) {
				b.ReportAllocs()
				x := topics.NewIndex[int](topics.WithCacheSize(0))
				addGroups(b, x, l.patterns, names)
				for b.Loop() {
					if r := x.Match("svc.jobs"); len(r.Groups) != n {
						b.Fatalf("%d groups; want %d", len(r.Groups), n)
					}
				}
			})
		}
	}
}

// addGroups subscribes value i in group names[i] to each pattern.
func addGroups(b *testing.B, x *topics.Index[int], patterns, names []string) {
	b.Helper()
	for _, p := range patterns {
		for i, g := range names {
			if err := x.Add(p, g, i); err != nil {
				b.Fatal(err)
			}
		}
	}
}
