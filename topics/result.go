package topics

import "iter"

// Result is what a topic reaches: the plain subscribers, and for each queue
// group the members among which exactly one should receive the message.
// Queue groups are joined by name across patterns: members of group "w" on
// "a.*" and on "a.b" form one group for topic "a.b", as in NATS.
//
// A Result returned by Index.Match is shared and must not be modified. It is
// a snapshot: later changes to the index produce new Results and leave this
// one as it was.
type Result[T comparable] struct {
	Plain  []T
	Groups []Group[T]
}

// Group is one queue group in a Result.
type Group[T comparable] struct {
	Name    string
	Members []T
}

// Empty reports whether the Result reaches nobody.
func (r *Result[T]) Empty() bool { return len(r.Plain) == 0 && len(r.Groups) == 0 }

// smallResult lets a Result with a few plain subscribers and no groups, the
// common case, take one allocation instead of two.
type smallResult[T comparable] struct {
	r     Result[T]
	plain [4]T
}

// newResult builds the Result of the matching nodes, allocating it once at
// its final size, or returns empty if they hold nobody. Its cost is linear in
// what the Result holds.
func newResult[T comparable](nodes []*node[T], empty *Result[T]) *Result[T] {
	if len(nodes) == 0 {
		return empty
	}
	plain, groups, grouped := 0, 0, 0
	for _, n := range nodes {
		plain += len(n.plain.list)
		if n.groups != nil {
			groups += len(n.groups.members)
			grouped++
		}
	}
	var r *Result[T]
	if plain <= len(smallResult[T]{}.plain) && groups == 0 {
		s := new(smallResult[T])
		s.r.Plain = s.plain[:0:plain]
		r = &s.r
	} else {
		r = &Result[T]{Plain: make([]T, 0, plain)}
	}
	for _, n := range nodes {
		r.Plain = append(r.Plain, n.plain.list...)
	}
	if len(r.Plain) == 0 {
		r.Plain = nil
	}
	if groups > 0 {
		r.Groups = joinGroups(nodes, groups, grouped > 1)
	}
	return r
}

// fewGroups is how many groups a Result being built holds before it looks
// groups up by name through a map rather than a scan.
const fewGroups = 8

// joinGroups returns the queue groups of the nodes, count in all, merging
// those of the same name when merge is set. Names are unique within a node,
// so only groups of different nodes can merge. All members share one array,
// so that a Result takes the same few allocations however many groups it
// holds.
func joinGroups[T comparable](nodes []*node[T], count int, merge bool) []Group[T] {
	if !merge {
		members := 0
		for _, m := range groupsOf(nodes) {
			members += len(m)
		}
		all := make([]T, 0, members)
		out := make([]Group[T], 0, count)
		for name, m := range groupsOf(nodes) {
			all = append(all, m...)
			out = append(out, Group[T]{Name: name, Members: all[len(all)-len(m) : len(all) : len(all)]})
		}
		return out
	}
	// Place every node's group among the merged ones, then size each merged
	// group's share of the array, then copy: two passes over the groups and
	// one lookup each.
	var buf [4 * fewGroups]int32
	scratch := buf[:]
	if 2*count > len(buf) {
		scratch = make([]int32, 2*count)
	}
	dest, size := scratch[:count], scratch[count:2*count]
	b := byName[T]{groups: make([]Group[T], 0, count)}
	members, k := 0, 0
	for name, m := range groupsOf(nodes) {
		j := b.place(name)
		dest[k] = j
		k++
		size[j] += int32(len(m))
		members += len(m)
	}
	all := make([]T, members)
	off := 0
	for j := range b.groups {
		end := off + int(size[j])
		b.groups[j].Members = all[off:off:end]
		off = end
	}
	k = 0
	for _, m := range groupsOf(nodes) {
		g := &b.groups[dest[k]]
		g.Members = append(g.Members, m...)
		k++
	}
	return b.groups
}

// groupsOf yields the name and members of each queue group of the nodes.
func groupsOf[T comparable](nodes []*node[T]) iter.Seq2[string, []T] {
	return func(yield func(string, []T) bool) {
		for _, n := range nodes {
			if g := n.groups; g != nil {
				for i, name := range g.names.list {
					if !yield(name, g.members[i].list) {
						return
					}
				}
			}
		}
	}
}

// byName finds the groups of a Result being built by name: by a scan while
// there are few, then through a map, so that merging G groups costs O(G).
type byName[T comparable] struct {
	groups []Group[T]
	index  map[string]int32 // position of each group; nil while there are few
}

// place returns the position of the named group, adding it if absent.
func (b *byName[T]) place(name string) int32 {
	if b.index == nil && len(b.groups) < fewGroups {
		for j := range b.groups {
			if b.groups[j].Name == name {
				return int32(j)
			}
		}
	} else {
		if b.index == nil {
			b.index = make(map[string]int32, cap(b.groups))
			for j := range b.groups {
				b.index[b.groups[j].Name] = int32(j)
			}
		}
		if j, ok := b.index[name]; ok {
			return j
		}
		b.index[name] = int32(len(b.groups))
	}
	b.groups = append(b.groups, Group[T]{Name: name})
	return int32(len(b.groups) - 1)
}
