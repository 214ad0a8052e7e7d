package main

import (
	"sync"
	"testing"
)

// forEach calls fn once for each index, up to limit calls at a time: the
// first limit calls each wait until all of them are under way, so a
// forEach that ran fewer at once would never return, and no call may find
// more than limit under way.
func TestForEachRunsUpToLimitAtOnce(t *testing.T) {
	const n, limit = 20, 3
	var (
		mu     sync.Mutex
		active int
		most   int
		calls  = make([]int, n)
		full   = make(chan struct{})
		filled bool
	)
	forEach(n, limit, func(i int) {
		mu.Lock()
		active++
		most = max(most, active)
		calls[i]++
		if active == limit && !filled {
			filled = true
			close(full)
		}
		mu.Unlock()
		<-full
		mu.Lock()
		active--
		mu.Unlock()
	})
	if most != limit {
		t.Errorf("at most %d calls under way at once; want %d", most, limit)
	}
	for i, c := range calls {
		if c != 1 {
			t.Errorf("fn(%d) called %d times; want once", i, c)
		}
	}
}
