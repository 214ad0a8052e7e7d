package topics

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
// its final size, or returns empty if they hold nobody.
func newResult[T comparable](nodes []*node[T], empty *Result[T]) *Result[T] {
	if len(nodes) == 0 {
		return empty
	}
	plain, groups := 0, false
	for _, n := range nodes {
		plain += len(n.plain.list)
		groups = groups || len(n.groups) > 0
	}
	var r *Result[T]
	if plain <= len(smallResult[T]{}.plain) && !groups {
		s := new(smallResult[T])
		s.r.Plain = s.plain[:0:plain]
		r = &s.r
	} else {
		r = &Result[T]{Plain: make([]T, 0, plain)}
	}
	for _, n := range nodes {
		r.Plain = append(r.Plain, n.plain.list...)
		for i := range n.groups {
			r.addGroup(n.groups[i].name, n.groups[i].members.list)
		}
	}
	if len(r.Plain) == 0 {
		r.Plain = nil
	}
	return r
}

func (r *Result[T]) addGroup(name string, members []T) {
	for i := range r.Groups {
		if r.Groups[i].Name == name {
			r.Groups[i].Members = append(r.Groups[i].Members, members...)
			return
		}
	}
	r.Groups = append(r.Groups, Group[T]{Name: name, Members: append([]T(nil), members...)})
}
