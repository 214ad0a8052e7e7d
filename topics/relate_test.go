package topics

import (
	"fmt"
	"testing"
)

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		outer, inner string
		want         bool
	}{
		{">", "a", true},
		{">", ">", true},
		{">", "a.*.>", true},
		{"a.>", "a", false},
		{"a.>", "a.b", true},
		{"a.>", "a.>", true},
		{"a.>", "a.*", true},
		{"a.>", ">", false},
		{"a.>", "*.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a.*", true},
		{"a.*", "a.>", false},
		{"a.*", "a.b.c", false},
		{"a.b", "a.*", false},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
		{"*.*", "a.b", true},
		{"a*", "ab", false}, // a longer token with "*" is literal
		{"a", "", false},
		{"a..b", "a", false},
	} {
		if got := Covers(c.outer, c.inner); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.outer, c.inner, got, c.want)
		}
	}
}

func TestOverlaps(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{">", "a", true},
		{"a.>", "a", false},
		{"a.>", "*.b", true},
		{"a.*", "*.b", true},
		{"a.*", "b.*", false},
		{"a.*", "a.b.c", false},
		{"a.*.c", "a.>", true},
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"*", "a.b", false},
		{"_INBOX.>", ">", true},
		{"x", "bad..pattern", false},
	} {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := Overlaps(c.b, c.a); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v (not symmetric)", c.b, c.a, got, c.want)
		}
	}
}

// TestRelationsAgreeWithMatch checks Covers and Overlaps against Match on
// every pattern and topic built from a small alphabet: a cover matches
// every topic the covered pattern does, and patterns overlap exactly when
// some topic matches both.
func TestRelationsAgreeWithMatch(t *testing.T) {
	var pats, tops []string
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, tok := range []string{"a", "b", "*", ">"} {
			p := tok
			if prefix != "" {
				p = prefix + "." + tok
			}
			if ValidPattern(p) == nil {
				pats = append(pats, p)
				if ValidTopic(p) == nil {
					tops = append(tops, p)
				}
			}
			if tok != ">" {
				build(p, depth-1)
			}
		}
	}
	build("", 3)
	// Topics one token deeper than any pattern, so that ">" shows.
	for _, t3 := range tops {
		if len(t3) == 5 {
			tops = append(tops, t3+".a", t3+".b")
		}
	}
	for _, p := range pats {
		for _, q := range pats {
			covers, overlaps := true, false
			for _, topic := range tops {
				mp, mq := Match(p, topic), Match(q, topic)
				if mq && !mp {
					covers = false
				}
				if mp && mq {
					overlaps = true
				}
			}
			name := fmt.Sprintf("(%q, %q)", p, q)
			if got := Covers(p, q); got != covers {
				t.Errorf("Covers%s = %v; the topics say %v", name, got, covers)
			}
			if got := Overlaps(p, q); got != overlaps {
				t.Errorf("Overlaps%s = %v; the topics say %v", name, got, overlaps)
			}
		}
	}
}
