package topics

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// model is the naive reference the index is checked against: a list of
// subscriptions and a Match loop over all of them.
type model struct{ subs []modelSub }

type modelSub struct {
	pattern, group string
	v              int
}

func (m *model) match(topic string) ([]int, map[string][]int) {
	var plain []int
	groups := map[string][]int{}
	for _, s := range m.subs {
		if !Match(s.pattern, topic) {
			continue
		}
		if s.group == "" {
			plain = append(plain, s.v)
		} else {
			groups[s.group] = append(groups[s.group], s.v)
		}
	}
	slices.Sort(plain)
	for _, g := range groups {
		slices.Sort(g)
	}
	return plain, groups
}

// byteReader turns fuzz input into small choices; it yields zeros once the
// input runs out, so every input is a valid program.
type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) next(n int) int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1]) % n
}

func (r *byteReader) more() bool { return r.i < len(r.b) }

func (r *byteReader) words(alphabet []string) string {
	n := 1 + r.next(4)
	s := alphabet[r.next(len(alphabet))]
	for range n - 1 {
		s += "." + alphabet[r.next(len(alphabet))]
	}
	return s
}

var (
	patternTokens = []string{"a", "b", "c", "*", ">", "a*"}
	topicTokens   = []string{"a", "b", "c", "a*"}
	groupNames    = []string{"", "", "g", "h"}
)

// FuzzIndexAgainstNaive runs a random program of adds, removes and matches
// on an Index and on the naive model, and fails at the first disagreement.
func FuzzIndexAgainstNaive(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("add a subscription, remove it, match again"))
	f.Add([]byte{0, 3, 4, 4, 0, 1, 1, 2, 2, 2, 9, 9, 1, 0, 0, 2})
	f.Fuzz(func(t *testing.T, program []byte) {
		r := &byteReader{b: program}
		cacheSize := []int{0, 2, DefaultCacheSize}[r.next(3)]
		x := NewIndex[int](WithCacheSize(cacheSize))
		var m model
		for step := 0; r.more(); step++ {
			switch r.next(3) {
			case 0:
				s := modelSub{r.words(patternTokens), groupNames[r.next(4)], r.next(8)}
				err := x.Add(s.pattern, s.group, s.v)
				valid := ValidPattern(s.pattern) == nil
				exists := slices.Contains(m.subs, s)
				switch {
				case !valid && err == nil:
					t.Fatalf("step %d: Add(%q) accepted an invalid pattern", step, s.pattern)
				case valid && exists && err != ErrExists:
					t.Fatalf("step %d: Add(%v) twice: %v", step, s, err)
				case valid && !exists && err != nil:
					t.Fatalf("step %d: Add(%v): %v", step, s, err)
				case valid && !exists:
					m.subs = append(m.subs, s)
				}
			case 1:
				if len(m.subs) == 0 {
					continue
				}
				i := r.next(len(m.subs))
				s := m.subs[i]
				if err := x.Remove(s.pattern, s.group, s.v); err != nil {
					t.Fatalf("step %d: Remove(%v): %v", step, s, err)
				}
				m.subs = slices.Delete(m.subs, i, i+1)
			case 2:
				topic := r.words(topicTokens)
				wantPlain, wantGroups := m.match(topic)
				gotPlain, gotGroups := sorted(x.Match(topic))
				if !slices.Equal(gotPlain, wantPlain) || !maps.EqualFunc(gotGroups, wantGroups, slices.Equal) {
					t.Fatalf("step %d: Match(%q) = %v %v; want %v %v (subs %v)",
						step, topic, gotPlain, gotGroups, wantPlain, wantGroups, m.subs)
				}
			}
		}
		if x.Len() != len(m.subs) {
			t.Fatalf("Len() = %d; want %d", x.Len(), len(m.subs))
		}
	})
}

// FuzzGrammar checks the grammar's own consistency on arbitrary strings.
func FuzzGrammar(f *testing.F) {
	for _, s := range []string{"a.b", "a.*", "a.>", ">", "a..b", "a b", "\xff", "a.>.b", "ü.*"} {
		f.Add(s, "a.b")
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		topicErr, patternErr := ValidTopic(topic), ValidPattern(pattern)
		if ValidTopic(pattern) == nil && patternErr != nil {
			t.Fatalf("%q is a topic but not a pattern: %v", pattern, patternErr)
		}
		if topicErr == nil && !Match(topic, topic) {
			t.Fatalf("topic %q does not match itself", topic)
		}
		if patternErr == nil && IsLiteral(pattern) != (ValidTopic(pattern) == nil) {
			t.Fatalf("IsLiteral(%q) disagrees with ValidTopic", pattern)
		}
		got := Match(pattern, topic)
		if (topicErr != nil || patternErr != nil) && got {
			t.Fatalf("Match(%q, %q) true for invalid input", pattern, topic)
		}
		if topicErr == nil && patternErr == nil {
			x := NewIndex[int](WithCacheSize(0))
			if err := x.Add(pattern, "", 1); err != nil {
				t.Fatal(err)
			}
			if idx := !x.Match(topic).Empty(); idx != got {
				t.Fatalf("Match(%q, %q) = %v but the index says %v", pattern, topic, got, idx)
			}
		}
	})
}

func Example() {
	x := NewIndex[string]()
	_ = x.Add("app.*.opened", "", "logger")
	_ = x.Add("app.>", "workers", "worker-1")
	_ = x.Add("app.>", "workers", "worker-2")
	r := x.Match("app.editor.opened")
	fmt.Println(r.Plain, r.Groups[0].Name, len(r.Groups[0].Members))
	// Output: [logger] workers 2
}
