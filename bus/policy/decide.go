package policy

import (
	"slices"
	"strconv"

	"github.com/busd/busd/topics"
)

// Identity is who a connection is: its peer's uid and primary gid from
// SO_PEERCRED, and its supplementary groups where the kernel tells them.
type Identity struct {
	UID, GID uint32
	Groups   []uint32
}

func (id *Identity) inGroup(gid uint32) bool {
	return id.GID == gid || slices.Contains(id.Groups, gid)
}

// Subject is a policy applied to one identity: the rules that concern it,
// with %uid and %gid replaced, in order, the default rules last.
type Subject struct {
	rules []applied
	// everything[v] is set when the first rule for v allows it on ">": the
	// connection may do v anywhere, and its actions need no check.
	everything [nVerbs]bool
}

type applied struct {
	rule     *Rule
	patterns []string
}

// Decision is the outcome of a check: allowed or not, and by which rule.
type Decision struct {
	Allow bool
	Rule  *Rule
}

// For applies p to id on a broker running as brokerUID. A nil p is the
// empty policy: only the default rules.
func (p *Policy) For(id Identity, brokerUID uint32) *Subject {
	var rules []Rule
	if p != nil {
		rules = p.Rules
	}
	s := &Subject{}
	for i := range rules {
		r := &rules[i]
		if !r.Any && !slices.Contains(r.UIDs, id.UID) && !slices.ContainsFunc(r.GIDs, id.inGroup) {
			continue
		}
		a := applied{rule: r, patterns: make([]string, len(r.Patterns))}
		for j, pat := range r.Patterns {
			a.patterns[j] = substitute(pat, id.UID, id.GID)
		}
		s.rules = append(s.rules, a)
	}
	for _, r := range defaults(brokerUID) {
		if r.Any || slices.Contains(r.UIDs, id.UID) {
			s.rules = append(s.rules, applied{rule: r, patterns: r.Patterns})
		}
	}
	for v := range nVerbs {
		for _, a := range s.rules {
			if a.rule.Has(v) {
				s.everything[v] = a.rule.Allow && slices.Contains(a.patterns, topics.AnyTail)
				break
			}
		}
	}
	return s
}

// defaults returns the rules every policy ends with.
func defaults(brokerUID uint32) []*Rule {
	uid := strconv.FormatUint(uint64(brokerUID), 10)
	return []*Rule{
		{Allow: true, UIDs: []uint32{brokerUID}, Verbs: allVerbs, Patterns: []string{">"},
			text: "allow uid " + uid + " all >: the broker's own uid may do everything but monitor"},
		{Any: true, Verbs: allVerbs | 1<<Monitor, Patterns: []string{">"},
			text: "deny any all,monitor >: other uids may do nothing the policy does not allow"},
	}
}

// Everything reports whether the subject may do v on every topic.
func (s *Subject) Everything(v Verb) bool { return s.everything[v] }

// Decide decides v on a topic (or stream name): the first rule for v with
// a pattern matching it. topic must be a valid topic.
func (s *Subject) Decide(v Verb, topic string) Decision {
	for _, a := range s.rules {
		if !a.rule.Has(v) {
			continue
		}
		for _, p := range a.patterns {
			if topics.Match(p, topic) {
				return Decision{a.rule.Allow, a.rule}
			}
		}
	}
	return s.last()
}

// last is the decision of the last default rule, which speaks for every
// verb and valid topic: only an invalid topic or pattern gets past it.
func (s *Subject) last() Decision {
	return Decision{false, s.rules[len(s.rules)-1].rule}
}

// DecidePattern decides v on every topic a pattern matches at once. When
// the rules decide differently for different topics of the pattern,
// filtered is set and the decision allows, naming the first rule that
// allows some of them: each topic must then be decided with Decide. A
// denial names the first rule that denies any of the pattern's topics.
func (s *Subject) DecidePattern(v Verb, pattern string) (d Decision, filtered bool) {
	var firstAllow, firstDeny *Rule
	for _, a := range s.rules {
		if !a.rule.Has(v) {
			continue
		}
		for _, p := range a.patterns {
			covers := topics.Covers(p, pattern)
			if !covers && !topics.Overlaps(p, pattern) {
				continue
			}
			switch {
			case a.rule.Allow && firstAllow == nil:
				firstAllow = a.rule
			case !a.rule.Allow && firstDeny == nil:
				firstDeny = a.rule
			}
			if covers { // this rule decides every topic no earlier rule did
				if firstAllow == nil {
					return Decision{false, firstDeny}, false
				}
				return Decision{true, firstAllow}, firstDeny != nil
			}
		}
	}
	return s.last(), false
}
