// Package topicstest builds the subscription workloads that busd's topic
// index is benchmarked with, so that the index's own benchmarks and the
// side-by-side comparison with NATS in the bench module use exactly the
// same patterns and topics.
package topicstest

import "strconv"

// MaxTopics bounds how many distinct topics a Workload offers for uncached
// matching: enough to defeat CPU caches' luck, few enough to build quickly.
const MaxTopics = 4096

// Workload is a set of subscription patterns and topics to match against
// them. Every topic matches exactly PerTopic of the patterns.
type Workload struct {
	Name     string
	Patterns []string
	Topics   []string
	PerTopic int
}

// Literal returns n patterns without wildcards, "bench.lit.<i>.evt"; each
// topic matches one of them.
func Literal(n int) Workload {
	w := Workload{Name: "literal", Patterns: make([]string, n), PerTopic: 1}
	for i := range n {
		w.Patterns[i] = "bench.lit." + strconv.Itoa(i) + ".evt"
	}
	for i := range min(n, MaxTopics) {
		w.Topics = append(w.Topics, w.Patterns[spread(i, n)])
	}
	return w
}

// Wildcard returns n patterns that all use wildcards, cycling through four
// shapes ("svc.<j>.*.evt", "svc.*.<j>.>", "svc.<j>.>", "*.<j>.*.evt");
// topic "svc.<j>.<j>.evt" matches the four patterns of its j (one when n is
// 1). The trie then has wildcard branches at the first three levels.
func Wildcard(n int) Workload {
	w := Workload{Name: "wildcard", Patterns: make([]string, n), PerTopic: min(n, 4)}
	for i := range n {
		j := strconv.Itoa(i / 4)
		switch i % 4 {
		case 0:
			w.Patterns[i] = "svc." + j + ".*.evt"
		case 1:
			w.Patterns[i] = "svc.*." + j + ".>"
		case 2:
			w.Patterns[i] = "svc." + j + ".>"
		case 3:
			w.Patterns[i] = "*." + j + ".*.evt"
		}
	}
	groups := max(n/4, 1)
	for i := range min(groups, MaxTopics) {
		j := strconv.Itoa(spread(i, groups))
		w.Topics = append(w.Topics, "svc."+j+"."+j+".evt")
	}
	return w
}

// spread maps 0..MaxTopics-1 evenly over 0..n-1, so that the topics of a
// large workload reach all of its trie, not only its first branches.
func spread(i, n int) int {
	if n <= MaxTopics {
		return i
	}
	return i * (n / MaxTopics)
}
