package topics

import (
	"errors"
	"slices"
	"testing"
)

// sorted returns r's plain subscribers and each group's members in a
// canonical order, for comparison.
func sorted(r *Result[int]) ([]int, map[string][]int) {
	plain := slices.Sorted(slices.Values(r.Plain))
	groups := map[string][]int{}
	for _, g := range r.Groups {
		if _, dup := groups[g.Name]; dup {
			panic("group " + g.Name + " appears twice in one Result")
		}
		groups[g.Name] = slices.Sorted(slices.Values(g.Members))
	}
	return plain, groups
}

func mustAdd(t *testing.T, x *Index[int], pattern, group string, v int) {
	t.Helper()
	if err := x.Add(pattern, group, v); err != nil {
		t.Fatalf("Add(%q, %q, %d): %v", pattern, group, v, err)
	}
}

func TestIndexMatch(t *testing.T) {
	for _, size := range []int{0, DefaultCacheSize} {
		x := NewIndex[int](WithCacheSize(size))
		mustAdd(t, x, "a.b.c", "", 1)
		mustAdd(t, x, "a.*.c", "", 2)
		mustAdd(t, x, "a.>", "", 3)
		mustAdd(t, x, ">", "", 4)
		mustAdd(t, x, "a.b", "", 5)
		mustAdd(t, x, "*.b.*", "", 6)
		mustAdd(t, x, "x.y", "", 7)
		cases := map[string][]int{
			"a.b.c":   {1, 2, 3, 4, 6},
			"a.x.c":   {2, 3, 4},
			"a.b":     {3, 4, 5},
			"a":       {4},
			"x.y":     {4, 7},
			"q.b.q":   {4, 6},
			"a.b.c.d": {3, 4},
			"a.*":     nil, // not a topic
			"a..b":    nil,
		}
		for topic, want := range cases {
			for range 2 { // the second time from the cache
				got, groups := sorted(x.Match(topic))
				if !slices.Equal(got, want) || len(groups) != 0 {
					t.Errorf("cache %d: Match(%q) = %v %v; want %v", size, topic, got, groups, want)
				}
			}
		}
		if x.Len() != 7 {
			t.Errorf("Len() = %d; want 7", x.Len())
		}
	}
}

func TestIndexQueueGroupsJoinByName(t *testing.T) {
	x := NewIndex[int]()
	mustAdd(t, x, "job.*", "w", 1)
	mustAdd(t, x, "job.*", "w", 2)
	mustAdd(t, x, "job.print", "w", 3)
	mustAdd(t, x, "job.>", "audit", 4)
	mustAdd(t, x, "job.print", "", 5)
	plain, groups := sorted(x.Match("job.print"))
	if !slices.Equal(plain, []int{5}) {
		t.Errorf("plain = %v; want [5]", plain)
	}
	if !slices.Equal(groups["w"], []int{1, 2, 3}) || !slices.Equal(groups["audit"], []int{4}) || len(groups) != 2 {
		t.Errorf("groups = %v; want w:[1 2 3] audit:[4]", groups)
	}
	if err := x.Remove("job.*", "w", 2); err != nil {
		t.Fatal(err)
	}
	_, groups = sorted(x.Match("job.print"))
	if !slices.Equal(groups["w"], []int{1, 3}) {
		t.Errorf("after remove: w = %v; want [1 3]", groups["w"])
	}
}

func TestIndexAddRemoveErrors(t *testing.T) {
	x := NewIndex[int]()
	if err := x.Add("a..b", "", 1); !errors.Is(err, ErrEmptyToken) {
		t.Errorf("Add bad pattern: %v", err)
	}
	if err := x.Add("a.b", "g.h", 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Add bad group: %v", err)
	}
	mustAdd(t, x, "a.b", "", 1)
	if err := x.Add("a.b", "", 1); !errors.Is(err, ErrExists) {
		t.Errorf("Add twice: %v", err)
	}
	mustAdd(t, x, "a.b", "g", 1) // same value, other group: a different subscription
	for _, c := range []struct{ p, g string }{{"a.c", ""}, {"a.b", "h"}, {"a.*", ""}, {"a", ""}} {
		if err := x.Remove(c.p, c.g, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%q, %q): %v; want ErrNotFound", c.p, c.g, err)
		}
	}
	if err := x.Remove("a.b", "", 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove other value: %v", err)
	}
}

func TestIndexRemovePrunesTheTrie(t *testing.T) {
	x := NewIndex[int]()
	patterns := []string{"a.b.c", "a.*.c", "a.>", "a.b", "*.b.*", "a.b.c.d.e.f"}
	for i, p := range patterns {
		mustAdd(t, x, p, "", i)
		mustAdd(t, x, p, "g", i)
	}
	// many values on one node and many children of one node exercise the
	// set's position map and the node's literal map
	for i := range 100 {
		mustAdd(t, x, "wide.tok"+string(rune('A'+i%50))+string(rune('a'+i/50)), "", i)
		mustAdd(t, x, "big", "", i)
	}
	for i, p := range patterns {
		for _, g := range []string{"", "g"} {
			if err := x.Remove(p, g, i); err != nil {
				t.Fatalf("Remove(%q, %q): %v", p, g, err)
			}
		}
	}
	for i := range 100 {
		if err := x.Remove("wide.tok"+string(rune('A'+i%50))+string(rune('a'+i/50)), "", i); err != nil {
			t.Fatal(err)
		}
		if err := x.Remove("big", "", i); err != nil {
			t.Fatal(err)
		}
	}
	if !x.root.empty() || x.Len() != 0 {
		t.Fatalf("root not empty after removing everything: %+v len %d", x.root, x.Len())
	}
}

func TestCachedMatchDoesNotAllocate(t *testing.T) {
	x := NewIndex[int]()
	mustAdd(t, x, "a.*.c", "", 1)
	mustAdd(t, x, "a.b.c", "q", 2)
	x.Match("a.b.c")
	x.Match("nobody.listens")
	allocs := testing.AllocsPerRun(100, func() {
		if r := x.Match("a.b.c"); len(r.Plain) != 1 {
			t.Fatal("lost the match")
		}
		if r := x.Match("nobody.listens"); !r.Empty() {
			t.Fatal("unexpected match")
		}
	})
	if allocs != 0 {
		t.Fatalf("cached Match allocates %v times", allocs)
	}
}

// cached reports whether topic has a cache entry, without filling one.
func cached(x *Index[int], topic string) bool {
	return x.cache.get(x.cache.hash(topic), topic) != nil
}

func TestCacheInvalidationIsExact(t *testing.T) {
	x := NewIndex[int]()
	topics := []string{"a.b.c", "a.b.d", "a.x", "z.z"}
	fill := func() {
		for _, tp := range topics {
			x.Match(tp)
		}
	}
	cases := []struct {
		pattern string
		evicted []string
	}{
		{"a.b.c", []string{"a.b.c"}},
		{"a.b.*", []string{"a.b.c", "a.b.d"}},
		{"a.>", []string{"a.b.c", "a.b.d", "a.x"}},
		{"q.>", nil},
		{"*.z", []string{"z.z"}},
		{">", topics},
	}
	for i, c := range cases {
		fill()
		mustAdd(t, x, c.pattern, "", i)
		for _, tp := range topics {
			if got, want := cached(x, tp), !slices.Contains(c.evicted, tp); got != want {
				t.Errorf("after Add(%q): %q cached = %v; want %v", c.pattern, tp, got, want)
			}
		}
		fill()
		if err := x.Remove(c.pattern, "", i); err != nil {
			t.Fatal(err)
		}
		for _, tp := range topics {
			if got, want := cached(x, tp), !slices.Contains(c.evicted, tp); got != want {
				t.Errorf("after Remove(%q): %q cached = %v; want %v", c.pattern, tp, got, want)
			}
		}
	}
}

func TestCacheSeesEveryChange(t *testing.T) {
	x := NewIndex[int](WithCacheSize(2)) // tiny: forces evictions
	for i := range 50 {
		p := []string{"t.a", "t.*", "t.>", ">", "t.b"}[i%5]
		mustAdd(t, x, p, "", i)
		for _, tp := range []string{"t.a", "t.b", "t.c", "u"} {
			want := naive(x, tp)
			got, _ := sorted(x.Match(tp))
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: Match(%q) = %v; want %v", i, tp, got, want)
			}
		}
	}
}

// naive answers a match the slow way, by testing every pattern in the trie.
func naive(x *Index[int], topic string) []int {
	var out []int
	var walk func(n *node[int], pattern string)
	walk = func(n *node[int], pattern string) {
		if pattern != "" && Match(pattern, topic) {
			out = append(out, n.plain.list...)
		}
		join := func(tok string) string {
			if pattern == "" {
				return tok
			}
			return pattern + "." + tok
		}
		for _, k := range n.kids {
			walk(k.n, join(k.token))
		}
		for tok, c := range n.lit {
			walk(c, join(tok))
		}
		if n.star != nil {
			walk(n.star, join("*"))
		}
		if n.tail != nil {
			walk(n.tail, join(">"))
		}
	}
	x.mu.RLock()
	walk(&x.root, "")
	x.mu.RUnlock()
	slices.Sort(out)
	return out
}

func TestLookupReportsValidity(t *testing.T) {
	for _, size := range []int{0, 16} {
		x := NewIndex[int](WithCacheSize(size))
		mustAdd(t, x, "a.>", "", 1)
		for range 2 {
			if r, ok := x.Lookup("a.b"); !ok || len(r.Plain) != 1 {
				t.Fatalf("Lookup(a.b) = %v, %v", r, ok)
			}
			if r, ok := x.Lookup("nobody"); !ok || !r.Empty() {
				t.Fatalf("Lookup(nobody) = %v, %v", r, ok)
			}
			for _, bad := range []string{"a.*", "a..b", "", "a b"} {
				if r, ok := x.Lookup(bad); ok || !r.Empty() {
					t.Fatalf("Lookup(%q) = %v, %v; want invalid", bad, r, ok)
				}
			}
		}
	}
}
