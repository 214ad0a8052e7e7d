package topics

// groupTable holds the queue groups of one pattern. The names are a set, so
// a group is found by a scan while there are few and through the set's
// position map once there are many: joining or leaving any of G groups then
// costs O(1), not O(G). The members live in a slice kept parallel to the
// names, and the table exists only while it holds a group, so that the many
// nodes without groups stay small.
type groupTable[T comparable] struct {
	names   set[string]
	members []set[T] // members[i] belongs to group names.list[i]

	// Room for the first group, so that a pattern's only group, the usual
	// case, takes one allocation rather than three.
	firstName    [1]string
	firstMembers [1]set[T]
}

// groupOrNew returns the members of the named group, creating it if needed.
func (n *node[T]) groupOrNew(name string) *set[T] {
	g := n.groups
	if g == nil {
		g = new(groupTable[T])
		g.names.list, g.members = g.firstName[:0], g.firstMembers[:0]
		n.groups = g
	} else if i := g.names.find(name); i >= 0 {
		return &g.members[i]
	}
	g.names.push(name)
	g.members = append(g.members, set[T]{})
	return &g.members[len(g.members)-1]
}

// removeGrouped removes v from the named group, and the group once it has
// no members, and reports whether v was a member.
func (n *node[T]) removeGrouped(name string, v T) bool {
	g := n.groups
	if g == nil {
		return false
	}
	i := g.names.find(name)
	if i < 0 || !g.members[i].remove(v) {
		return false
	}
	if len(g.members[i].list) > 0 {
		return true
	}
	if len(g.members) == 1 {
		n.groups = nil
		return true
	}
	g.names.cut(i)
	last := len(g.members) - 1
	g.members[i] = g.members[last]
	g.members[last] = set[T]{}
	g.members = g.members[:last]
	return true
}
