package topics

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentChurnAndMatch matches from several goroutines while others
// add and remove subscriptions. Subscriptions that never change must be in
// every Result, and once the churn stops no stale cached Result may remain.
func TestConcurrentChurnAndMatch(t *testing.T) {
	x := NewIndex[int](WithCacheSize(64))
	stable := map[string]int{"s.a": -1, "s.*": -2, "s.>": -3, ">": -4}
	for p, v := range stable {
		mustAdd(t, x, p, "", v)
	}
	topicsToMatch := []string{"s.a", "s.b", "s.a.b", "t.a", "u"}
	churn := []string{"s.a", "s.*", "s.>", "t.*", "*.a", ">", "u"}

	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	deadline := time.Now().Add(500 * time.Millisecond)
	for w := range 2 {
		writers.Go(func() {
			for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
				p := churn[(i+w)%len(churn)]
				v := w*1_000_000 + i
				if err := x.Add(p, []string{"", "g"}[i%2], v); err != nil {
					t.Error(err)
					return
				}
				if err := x.Remove(p, []string{"", "g"}[i%2], v); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 3 {
		readers.Go(func() {
			for i := 0; !stop.Load() && i < 1_000_000; i++ {
				tp := topicsToMatch[i%len(topicsToMatch)]
				r := x.Match(tp)
				for p, v := range stable {
					if Match(p, tp) && !slices.Contains(r.Plain, v) {
						t.Errorf("Match(%q) lost stable subscriber %q", tp, p)
						return
					}
				}
			}
		})
	}
	writers.Wait()
	stop.Store(true)
	readers.Wait()

	if x.Len() != len(stable) {
		t.Fatalf("Len() = %d; want %d", x.Len(), len(stable))
	}
	for _, tp := range append(topicsToMatch, "s.a") {
		got, groups := sorted(x.Match(tp))
		if want := naive(x, tp); !slices.Equal(got, want) || len(groups) != 0 {
			t.Errorf("after churn, Match(%q) = %v %v; want %v", tp, got, groups, want)
		}
	}
}

// TestConcurrentDistinctTopics makes concurrent cache fills race with
// changes on many topics, then checks every cached answer.
func TestConcurrentDistinctTopics(t *testing.T) {
	x := NewIndex[int](WithCacheSize(128))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				tp := "d." + strconv.Itoa((i*7+g)%300)
				if g%2 == 0 {
					_ = x.Add(tp, "", i)
				}
				x.Match(tp)
			}
		})
	}
	wg.Wait()
	for i := range 300 {
		tp := "d." + strconv.Itoa(i)
		got, _ := sorted(x.Match(tp))
		if want := naive(x, tp); !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %v; want %v", tp, got, want)
		}
	}
}
