package topics

import (
	"sync"
	"sync/atomic"
)

// Index maps subscription patterns to subscriber values and answers which
// of them a topic reaches. It is safe for concurrent use: any number of
// goroutines may match while others add and remove subscriptions.
//
// Matching walks a token trie, so its cost depends on the subscriptions that
// match and the wildcard branches on the way, never on how many others
// exist; building the Result takes time linear in what it holds. Adding or
// removing one subscription takes amortised constant time however many other
// values and queue groups its pattern has, plus the cache invalidation below.
// Results are cached per topic; a cached match takes no lock and allocates
// nothing. Adding or removing a subscription removes exactly the cached
// topics its pattern matches: for a literal pattern that is one hash probe,
// for a wildcard pattern a scan of the cache.
//
// The zero Index is not usable; call NewIndex.
type Index[T comparable] struct {
	mu    sync.RWMutex // guards the trie and count
	root  node[T]
	count int
	gen   atomic.Uint64 // bumped by every change, before its cache invalidation
	cache *cache[T]     // nil when caching is off
	empty *Result[T]    // shared answer for topics nobody subscribes to
}

// Option configures an Index.
type Option func(*config)

type config struct{ cacheSize int }

// WithCacheSize sets how many topics' Results the Index caches (rounded up
// to a power of two); 0 turns the cache off.
func WithCacheSize(n int) Option { return func(c *config) { c.cacheSize = max(n, 0) } }

// NewIndex returns an empty Index.
func NewIndex[T comparable](opts ...Option) *Index[T] {
	cfg := config{cacheSize: DefaultCacheSize}
	for _, o := range opts {
		o(&cfg)
	}
	x := &Index[T]{empty: new(Result[T])}
	if cfg.cacheSize > 0 {
		x.cache = newCache[T](cfg.cacheSize)
	}
	return x
}

// Len returns the number of subscriptions.
func (x *Index[T]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}

// Add subscribes v to pattern, in queue group group unless it is "". The
// index keeps a reference to the bytes of pattern and group. It returns an
// error wrapping ErrInvalid for a bad pattern or group, and ErrExists if the
// same value is already subscribed to the same pattern and group.
func (x *Index[T]) Add(pattern, group string, v T) error {
	if err := ValidSub(pattern, group); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	n := &x.root
	for tok := range tokens(pattern) {
		n = n.nextOrNew(tok)
	}
	s := &n.plain
	if group != "" {
		s = n.groupOrNew(group)
	}
	if !s.add(v) {
		return ErrExists
	}
	x.changedLocked(pattern, +1)
	return nil
}

// Remove undoes Add. It returns ErrNotFound if v is not subscribed to
// pattern in group.
func (x *Index[T]) Remove(pattern, group string, v T) error {
	if err := ValidSub(pattern, group); err != nil {
		return err
	}
	var tbuf [MaxDepth]string
	toks := splitValid(pattern, tbuf[:0])
	var pbuf [MaxDepth + 1]*node[T]
	path := append(pbuf[:0], &x.root) // path[i] is reached by toks[:i]

	x.mu.Lock()
	defer x.mu.Unlock()
	for _, tok := range toks {
		n := path[len(path)-1].step(tok)
		if n == nil {
			return ErrNotFound
		}
		path = append(path, n)
	}
	n := path[len(toks)]
	var found bool
	if group == "" {
		found = n.plain.remove(v)
	} else {
		found = n.removeGrouped(group, v)
	}
	if !found {
		return ErrNotFound
	}
	for i := len(toks); i > 0 && path[i].empty(); i-- {
		path[i-1].drop(toks[i-1])
	}
	x.changedLocked(pattern, -1)
	return nil
}

// Match returns what topic reaches. The Result is shared: do not modify it.
// A topic that is not valid reaches nobody.
func (x *Index[T]) Match(topic string) *Result[T] {
	r, _ := x.Lookup(topic)
	return r
}

// Lookup is Match that also reports whether topic is valid, so a caller
// that must refuse invalid topics needs no separate ValidTopic pass: a cached
// topic is known valid. The index keeps no reference to topic, which may
// therefore alias a buffer that is reused afterwards.
func (x *Index[T]) Lookup(topic string) (*Result[T], bool) {
	c := x.cache
	if c == nil {
		return x.matchTrie(topic)
	}
	h := c.hash(topic)
	if r := c.get(h, topic); r != nil {
		return r, true
	}
	gen := x.gen.Load()
	r, ok := x.matchTrie(topic)
	if ok { // invalid topics are never cached, so that a hit needs no validation
		c.put(h, topic, r, gen, &x.gen)
	}
	return r, ok
}

// matchTrie computes a Result from the trie. It reports false, with the
// empty Result, for an invalid topic.
func (x *Index[T]) matchTrie(topic string) (*Result[T], bool) {
	var buf [MaxDepth]string
	toks, ok := splitTopic(topic, buf[:0])
	if !ok {
		return x.empty, false
	}
	var nodeBuf [8]*node[T] // enough for most topics; more spill to the heap
	x.mu.RLock()
	nodes := x.root.collect(toks, nodeBuf[:0])
	r := newResult(nodes, x.empty) // copies out of the nodes, so under the lock
	x.mu.RUnlock()
	return r, true
}

// changedLocked records a change to pattern's subscriptions. The generation
// moves first, then the cache forgets what the change can affect: the order
// the cache's put relies on.
func (x *Index[T]) changedLocked(pattern string, delta int) {
	x.count += delta
	x.gen.Add(1)
	if x.cache != nil {
		x.cache.invalidate(pattern)
	}
}

// ValidSub reports why pattern, with group if not "", is not a
// subscription Add would take, or nil if it is one. The error is an
// *Error whose Kind says which of the two is wrong.
func ValidSub(pattern, group string) error {
	if err := ValidPattern(pattern); err != nil {
		return err
	}
	if group != "" {
		return ValidGroup(group)
	}
	return nil
}
