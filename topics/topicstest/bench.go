package topicstest

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/busd/busd/topics"
)

// Subject is a subscription index under benchmark. Subscriptions are named
// by their position in the pattern list the Subject was made with, so that
// an index needing per-subscription objects can make them beforehand,
// outside what is measured.
type Subject interface {
	Add(id int)
	Remove(id int)
	Match(topic string) int // how many subscribers the topic reaches
}

// System makes Subjects of one implementation.
type System struct {
	Name string
	New  func(patterns []string, cached bool) Subject
}

// Busd is busd's topics.Index as a System.
func Busd() System {
	return System{Name: "busd", New: func(patterns []string, cached bool) Subject {
		size := 0
		if cached {
			size = topics.DefaultCacheSize
		}
		return &busdSubject{topics.NewIndex[int](topics.WithCacheSize(size)), patterns}
	}}
}

type busdSubject struct {
	x        *topics.Index[int]
	patterns []string
}

func (s *busdSubject) Add(id int) {
	if err := s.x.Add(s.patterns[id], "", id); err != nil {
		panic(err)
	}
}

func (s *busdSubject) Remove(id int) {
	if err := s.x.Remove(s.patterns[id], "", id); err != nil {
		panic(err)
	}
}

func (s *busdSubject) Match(topic string) int { return len(s.x.Match(topic).Plain) }

// Sizes are the subscription counts benchmarked.
var Sizes = []int{1, 1_000, 100_000, 1_000_000}

// hotTopics is how many topics a cached benchmark cycles through: well
// inside every cache's capacity.
const hotTopics = 64

// Benchmark runs the whole matrix for each System, the Systems innermost so
// that their figures for one workload are taken side by side:
//
//	match/<workload>/<size>/<cached|uncached>/<single|parallel>/<system>
//	churn/<literal|wildcard>/<system>
//	memory/<workload>/<system>
func Benchmark(b *testing.B, systems ...System) {
	b.Run("match", func(b *testing.B) { benchMatch(b, systems) })
	b.Run("churn", func(b *testing.B) { benchChurn(b, systems) })
	b.Run("memory", func(b *testing.B) { benchMemory(b, systems) })
}

func benchMatch(b *testing.B, systems []System) {
	for _, size := range Sizes {
		for _, w := range []Workload{Literal(size), Wildcard(size)} {
			for _, cached := range []bool{true, false} {
				// Built on first use, so that a -bench filter skips the cost.
				built := map[string]Subject{}
				subject := func(sys System) Subject {
					if built[sys.Name] == nil {
						s := sys.New(w.Patterns, cached)
						for id := range w.Patterns {
							s.Add(id)
						}
						built[sys.Name] = s
					}
					return built[sys.Name]
				}
				topicList := w.Topics
				if cached {
					topicList = topicList[:min(len(topicList), hotTopics)]
				}
				name := fmt.Sprintf("%s/%s/%s", w.Name, sizeName(size), map[bool]string{true: "cached", false: "uncached"}[cached])
				for _, par := range []bool{false, true} {
					for _, sys := range systems {
						run := runSingle
						if par {
							run = runParallel
						}
						b.Run(name+"/"+map[bool]string{false: "single", true: "parallel"}[par]+"/"+sys.Name, func(b *testing.B) {
							run(b, subject(sys), topicList, w.PerTopic)
						})
					}
				}
			}
		}
	}
}

func runSingle(b *testing.B, s Subject, topicList []string, want int) {
	i := 0
	for b.Loop() {
		if s.Match(topicList[i]) != want {
			b.Fatalf("topic %q: wrong match count", topicList[i])
		}
		if i++; i == len(topicList) {
			i = 0
		}
	}
}

func runParallel(b *testing.B, s Subject, topicList []string, want int) {
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if s.Match(topicList[i]) != want {
				panic("wrong match count for " + topicList[i])
			}
			if i++; i == len(topicList) {
				i = 0
			}
		}
	})
}

// benchChurn adds and removes one subscription per op in an index of 1,000
// wildcard patterns whose cache is warm, so a change must also fix the cache.
func benchChurn(b *testing.B, systems []System) {
	base := Wildcard(1000)
	for _, churn := range []string{"literal", "wildcard"} {
		patterns := append([]string(nil), base.Patterns...)
		first := len(patterns)
		for i := range MaxTopics {
			if churn == "literal" {
				patterns = append(patterns, "bench.churn."+strconv.Itoa(i))
			} else {
				patterns = append(patterns, "svc.*.churn"+strconv.Itoa(i)+".>")
			}
		}
		for _, sys := range systems {
			b.Run(churn+"/"+sys.Name, func(b *testing.B) {
				s := sys.New(patterns, true)
				for id := range first {
					s.Add(id)
				}
				hot := base.Topics[:hotTopics]
				i := 0
				for b.Loop() {
					id := first + i%MaxTopics
					s.Add(id)
					s.Remove(id)
					s.Match(hot[i%hotTopics])
					i++
				}
			})
		}
	}
}

// benchMemory reports the heap the index uses per subscription, for 100,000
// subscriptions, as the metric B/sub.
func benchMemory(b *testing.B, systems []System) {
	const n = 100_000
	for _, w := range []Workload{Literal(n), Wildcard(n)} {
		for _, sys := range systems {
			b.Run(w.Name+"/"+sys.Name, func(b *testing.B) {
				var perSub float64
				for b.Loop() {
					s := sys.New(w.Patterns, true)
					before := heapInUse()
					for id := range w.Patterns {
						s.Add(id)
					}
					perSub = float64(heapInUse()-before) / n
					runtime.KeepAlive(s)
				}
				b.ReportMetric(perSub, "B/sub")
			})
		}
	}
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}
