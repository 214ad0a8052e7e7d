package topics

import (
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"
)

// DefaultCacheSize is how many topics an Index remembers the Result of,
// unless told otherwise with WithCacheSize.
const DefaultCacheSize = 1024

// ways is the cache's associativity: a topic may live in any of the ways
// slots of its set. Four keeps a hot set of a few dozen topics from ever
// colliding enough to thrash, at the cost of four loads for a miss.
const ways = 4

// cache maps topics to their Results without locks on the read side, so
// that parallel matching of hot topics never contends.
//
// Entries are immutable. Correctness against concurrent index changes rests
// on a generation counter; see put. A bitmap of occupied slots lets a
// wildcard change visit only the slots in use.
type cache[T comparable] struct {
	slots []atomic.Pointer[entry[T]]
	used  []atomic.Uint64 // bit i set: slot i may hold an entry
	mask  uint64          // selects a set's first slot from a hash
	seed  maphash.Seed
}

type entry[T comparable] struct {
	topic string
	res   *Result[T]
}

func newCache[T comparable](size int) *cache[T] {
	n := 64 // one bitmap word
	for n < size {
		n <<= 1
	}
	return &cache[T]{
		slots: make([]atomic.Pointer[entry[T]], n),
		used:  make([]atomic.Uint64, n/64),
		mask:  uint64(n-1) &^ (ways - 1),
		seed:  maphash.MakeSeed(),
	}
}

func (c *cache[T]) hash(topic string) uint64 { return maphash.String(c.seed, topic) }

// get returns the cached Result for topic, or nil.
func (c *cache[T]) get(h uint64, topic string) *Result[T] {
	set := c.slots[h&c.mask:][:ways]
	for i := range set {
		if e := set[i].Load(); e != nil && e.topic == topic {
			return e.res
		}
	}
	return nil
}

// put caches res for topic, computed while the index generation was gen.
//
// A change to the index bumps the generation and only then removes the
// entries it affects. An entry stored (and marked in the bitmap) before that
// removal is removed by it; an entry stored after it sees the new generation
// on the check below and removes itself. Either way no stale Result outlives
// a change.
func (c *cache[T]) put(h uint64, topic string, res *Result[T], gen uint64, cur *atomic.Uint64) {
	e := &entry[T]{topic: strings.Clone(topic), res: res}
	first := h & c.mask
	i := first + (h>>62)%ways // the victim when the set is full
	for j := first; j < first+ways; j++ {
		if c.slots[j].Load() == nil {
			i = j
			break
		}
	}
	c.slots[i].Store(e)
	c.used[i/64].Or(1 << (i % 64))
	if cur.Load() != gen {
		c.slots[i].CompareAndSwap(e, nil)
	}
}

// invalidate removes every entry whose topic matches pattern. A literal
// pattern can only affect its own topic, found by hash; a wildcard pattern
// visits every occupied slot. Changes are serialized by the index, so only
// one invalidate runs at a time; gets and puts run alongside it.
func (c *cache[T]) invalidate(pattern string) {
	if IsLiteral(pattern) {
		first := c.hash(pattern) & c.mask
		for j := first; j < first+ways; j++ {
			c.drop(j, pattern, true)
		}
		return
	}
	for w := range c.used {
		for word := c.used[w].Load(); word != 0; word &= word - 1 {
			c.drop(uint64(w*64+bits.TrailingZeros64(word)), pattern, false)
		}
	}
}

// drop empties slot j if its entry's topic is matched by pattern (equal to
// it when literal), and keeps the bitmap conservative: a bit is cleared only
// while the slot is seen empty, and set again if a put raced in meanwhile.
func (c *cache[T]) drop(j uint64, pattern string, literal bool) {
	e := c.slots[j].Load()
	if e != nil {
		if literal && e.topic != pattern || !literal && !matchValid(pattern, e.topic) {
			return
		}
		c.slots[j].CompareAndSwap(e, nil)
	}
	bit := uint64(1) << (j % 64)
	c.used[j/64].And(^bit)
	if c.slots[j].Load() != nil {
		c.used[j/64].Or(bit)
	}
}
