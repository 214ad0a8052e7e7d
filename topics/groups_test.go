package topics

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// check compares x's answers for the topics with the model's.
func (m *model) check(t *testing.T, x *Index[int], step string, topics []string) {
	t.Helper()
	for _, tp := range topics {
		wantPlain, wantGroups := m.match(tp)
		for range 2 { // the second time from the cache, if there is one
			gotPlain, gotGroups := sorted(x.Match(tp))
			if !slices.Equal(gotPlain, wantPlain) || !maps.EqualFunc(gotGroups, wantGroups, slices.Equal) {
				t.Fatalf("%s: Match(%q) = %v, %d groups; want %v, %d groups",
					step, tp, gotPlain, len(gotGroups), wantPlain, len(wantGroups))
			}
		}
	}
	if x.Len() != len(m.subs) {
		t.Fatalf("%s: Len() = %d; want %d", step, x.Len(), len(m.subs))
	}
}

// TestManyGroups adds thousands of queue groups, removes them in a random
// order, adds half back and removes all again. It checks every topic against
// the model at each of the first and last steps of a phase, where sets and
// groups cross between small and large, and a few times in between.
func TestManyGroups(t *testing.T) {
	const n = 2000
	cases := []struct {
		name string
		sub  func(i int) modelSub
	}{
		{"one pattern, one member each", func(i int) modelSub {
			return modelSub{"jobs.print", "g" + strconv.Itoa(i), i}
		}},
		{"one pattern, several members each", func(i int) modelSub {
			return modelSub{"jobs.print", "g" + strconv.Itoa(i%500), i}
		}},
		{"same names across patterns", func(i int) modelSub {
			return modelSub{[]string{"jobs.print", "jobs.*", "jobs.>", ">"}[i%4], "g" + strconv.Itoa(i/4), i}
		}},
		{"groups and plain across patterns", func(i int) modelSub {
			group := "g" + strconv.Itoa(i%700)
			if i%5 == 0 {
				group = ""
			}
			return modelSub{[]string{"jobs.print", "*.print", "jobs.>", "jobs.scan"}[i%4], group, i}
		}},
	}
	topics := []string{"jobs.print", "jobs.scan", "jobs.print.color", "x.print", "other"}
	for _, c := range cases {
		for _, size := range []int{0, DefaultCacheSize} {
			t.Run(c.name+"/cache "+strconv.Itoa(size), func(t *testing.T) {
				x := NewIndex[int](WithCacheSize(size))
				var m model
				rng := rand.New(rand.NewPCG(1, uint64(size)))
				ids := rng.Perm(n)
				apply := func(step string, add bool, ids []int) {
					t.Helper()
					for k, id := range ids {
						s := c.sub(id)
						if add {
							mustAdd(t, x, s.pattern, s.group, s.v)
							m.subs = append(m.subs, s)
						} else {
							if err := x.Remove(s.pattern, s.group, s.v); err != nil {
								t.Fatalf("Remove(%q, %q, %d): %v", s.pattern, s.group, s.v, err)
							}
							i := slices.Index(m.subs, s)
							m.subs = slices.Delete(m.subs, i, i+1)
						}
						if k < 20 || len(ids)-k <= 20 || k%(len(ids)/4) == 0 {
							m.check(t, x, step+" "+strconv.Itoa(k), topics)
						}
					}
				}
				apply("add", true, ids)
				snapshot := x.Match("jobs.print")
				plain, groups := sorted(snapshot)
				rng.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
				apply("remove", false, ids)
				if p, g := sorted(snapshot); !slices.Equal(p, plain) || !maps.EqualFunc(g, groups, slices.Equal) {
					t.Fatal("a Result changed after its subscriptions were removed")
				}
				apply("add back", true, ids[:n/2])
				apply("remove again", false, ids[:n/2])
				if !x.root.empty() {
					t.Fatalf("trie not empty after removing everything: %+v", x.root)
				}
			})
		}
	}
}

// TestRemovingAllGroupsEmptiesTheTrie joins 30,000 groups on one pattern, as
// one connection may, and checks that leaving them all prunes the trie.
func TestRemovingAllGroupsEmptiesTheTrie(t *testing.T) {
	const n = 30_000
	x := NewIndex[int]()
	for i := range n {
		mustAdd(t, x, "svc.jobs", "g"+strconv.Itoa(i), 1)
	}
	if r := x.Match("svc.jobs"); len(r.Groups) != n || len(r.Plain) != 0 {
		t.Fatalf("Match: %d groups, %d plain; want %d, 0", len(r.Groups), len(r.Plain), n)
	}
	for i := range n {
		if err := x.Remove("svc.jobs", "g"+strconv.Itoa((i*7919)%n), 1); err != nil {
			t.Fatal(err)
		}
	}
	if !x.root.empty() || x.Len() != 0 {
		t.Fatalf("root not empty after removing every group: %+v, len %d", x.root, x.Len())
	}
	if r := x.Match("svc.jobs"); !r.Empty() {
		t.Fatalf("Match after removing every group: %+v", r)
	}
}
