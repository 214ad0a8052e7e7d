package topics

// fewKids is how many literal children a node keeps in a slice before it
// switches to a map: most trie nodes have one or two children, and a short
// slice is both smaller and faster to search than a map.
const fewKids = 8

// node is one token position in the trie: the subscriptions whose pattern
// ends here, and the children for the next token. Wildcard children have
// their own fields so that matching never looks them up by string.
type node[T comparable] struct {
	kids   []child[T]          // literal children while there are few
	lit    map[string]*node[T] // literal children once there are many; kids is nil then
	star   *node[T]            // the "*" child
	tail   *node[T]            // the ">" child
	plain  set[T]
	groups *groupTable[T] // nil while the pattern has no queue group
}

type child[T comparable] struct {
	token string
	n     *node[T]
}

// next returns the child for token, or nil.
func (n *node[T]) next(token string) *node[T] {
	if n.lit != nil {
		return n.lit[token]
	}
	for i := range n.kids {
		if n.kids[i].token == token {
			return n.kids[i].n
		}
	}
	return nil
}

// nextOrNew returns the child for token, creating it if needed.
func (n *node[T]) nextOrNew(token string) *node[T] {
	switch token {
	case AnyToken:
		if n.star == nil {
			n.star = new(node[T])
		}
		return n.star
	case AnyTail:
		if n.tail == nil {
			n.tail = new(node[T])
		}
		return n.tail
	}
	if c := n.next(token); c != nil {
		return c
	}
	c := new(node[T])
	switch {
	case n.lit != nil:
		n.lit[token] = c
	case len(n.kids) < fewKids:
		n.kids = append(n.kids, child[T]{token, c})
	default:
		n.lit = make(map[string]*node[T], 2*fewKids)
		for _, k := range n.kids {
			n.lit[k.token] = k.n
		}
		n.lit[token] = c
		n.kids = nil
	}
	return c
}

// step follows a pattern token, wildcards included, without creating nodes.
func (n *node[T]) step(token string) *node[T] {
	switch token {
	case AnyToken:
		return n.star
	case AnyTail:
		return n.tail
	}
	return n.next(token)
}

// drop removes the child for token, which must be empty.
func (n *node[T]) drop(token string) {
	switch token {
	case AnyToken:
		n.star = nil
		return
	case AnyTail:
		n.tail = nil
		return
	}
	if n.lit != nil {
		delete(n.lit, token)
		return
	}
	for i := range n.kids {
		if n.kids[i].token == token {
			last := len(n.kids) - 1
			n.kids[i] = n.kids[last]
			n.kids[last] = child[T]{}
			n.kids = n.kids[:last]
			if last == 0 {
				n.kids = nil
			}
			return
		}
	}
}

// empty reports whether the node holds nothing and can be pruned.
func (n *node[T]) empty() bool {
	return len(n.plain.list) == 0 && n.groups == nil &&
		len(n.kids) == 0 && len(n.lit) == 0 && n.star == nil && n.tail == nil
}

// collect appends to acc every node of this subtree whose subscriptions
// match the remaining tokens. Its cost depends on the matching branches
// only: one map or short-slice lookup per literal token, plus the wildcard
// children. (It passes the slice by value, not a pointer to a collector, so
// that the caller's stack array backing acc stays on the stack.)
func (n *node[T]) collect(tokens []string, acc []*node[T]) []*node[T] {
	if len(tokens) == 0 {
		return appendLive(acc, n)
	}
	if n.tail != nil {
		acc = appendLive(acc, n.tail)
	}
	rest := tokens[1:]
	if n.star != nil {
		acc = n.star.collect(rest, acc)
	}
	if c := n.next(tokens[0]); c != nil {
		acc = c.collect(rest, acc)
	}
	return acc
}

// appendLive appends n if it holds any subscription.
func appendLive[T comparable](acc []*node[T], n *node[T]) []*node[T] {
	if len(n.plain.list) == 0 && n.groups == nil {
		return acc
	}
	return append(acc, n)
}
