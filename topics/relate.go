package topics

import "strings"

// Covers reports whether every topic that inner matches, outer matches too:
// whether a subscription to inner can receive nothing a rule on outer does
// not speak for. Both must be valid patterns (a topic is a pattern); it is
// false otherwise.
func Covers(outer, inner string) bool {
	if ValidPattern(outer) != nil || ValidPattern(inner) != nil {
		return false
	}
	o, in := strings.Split(outer, "."), strings.Split(inner, ".")
	for i, t := range o {
		if t == AnyTail {
			return i < len(in) // ">" needs at least one token, any of inner's will do
		}
		if i >= len(in) {
			return false
		}
		switch u := in[i]; {
		case u == AnyTail:
			return false // inner matches any number of tokens here; outer a fixed one
		case t == AnyToken:
		case t != u:
			return false // a literal of outer that inner's token is not, or inner's "*"
		}
	}
	return len(o) == len(in)
}

// Overlaps reports whether some topic matches both patterns: whether a
// subscription to one can receive a message a rule on the other speaks for.
// Both must be valid patterns; it is false otherwise.
func Overlaps(a, b string) bool {
	if ValidPattern(a) != nil || ValidPattern(b) != nil {
		return false
	}
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(x) || i == len(y):
			return len(x) == len(y)
		case x[i] == AnyTail || y[i] == AnyTail:
			return true // both have a token left here, and ">" takes the rest
		case x[i] == AnyToken || y[i] == AnyToken || x[i] == y[i]:
		default:
			return false
		}
	}
}
