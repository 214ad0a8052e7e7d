package policy

import (
	"encoding/binary"
	"slices"
	"strconv"
	"strings"

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
//
// The Subjects of equal identities are one: a Subject holds every rule
// that concerns its identity, so a broker that gave each connection its
// own would hold the policy again for each, uncharged, however many
// connections one user opens. At most maxShared identities are kept (the
// users and groups of one machine, between reloads), and none with more
// than maxSharedGroups groups; past either, For makes a Subject each time.
func (p *Policy) For(id Identity, brokerUID uint32) *Subject {
	if p == nil || len(id.Groups) > maxSharedGroups {
		return subjectFor(p.rules(), id, brokerUID)
	}
	var buf [sharedKeyMax]byte
	key := sharedKey(buf[:0], id, brokerUID)
	p.mu.Lock()
	s := p.shared[string(key)]
	p.mu.Unlock()
	if s != nil {
		return s
	}
	s = subjectFor(p.Rules, id, brokerUID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shared == nil {
		p.shared = map[string]*Subject{}
	}
	if old := p.shared[string(key)]; old != nil {
		return old // made meanwhile by another goroutine: one is kept
	}
	if len(p.shared) < maxShared {
		p.shared[string(key)] = s
	}
	return s
}

func (p *Policy) rules() []Rule {
	if p == nil {
		return nil
	}
	return p.Rules
}

const (
	maxShared       = 4096
	maxSharedGroups = 64
	sharedKeyMax    = 12 + 4*maxSharedGroups
)

// sharedKey appends id, and the broker's uid, to b as the key of For's
// Subjects.
func sharedKey(b []byte, id Identity, brokerUID uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, brokerUID)
	b = binary.BigEndian.AppendUint32(b, id.UID)
	b = binary.BigEndian.AppendUint32(b, id.GID)
	for _, g := range id.Groups {
		b = binary.BigEndian.AppendUint32(b, g)
	}
	return b
}

// subjectFor makes the Subject of rules (and the default rules) for id.
func subjectFor(rules []Rule, id Identity, brokerUID uint32) *Subject {
	s := &Subject{}
	for i := range rules {
		r := &rules[i]
		if !r.Any && !slices.Contains(r.UIDs, id.UID) && !slices.ContainsFunc(r.GIDs, id.inGroup) {
			continue
		}
		a := applied{rule: r, patterns: r.Patterns}
		if slices.ContainsFunc(r.Patterns, func(p string) bool { return strings.Contains(p, "%") }) {
			a.patterns = make([]string, len(r.Patterns))
			for j, pat := range r.Patterns {
				a.patterns[j] = substitute(pat, id.UID, id.GID)
			}
		}
		s.rules = append(s.rules, a)
	}
	for _, r := range defaults(brokerUID) {
		if r.Any || slices.Contains(r.UIDs, id.UID) {
			a := applied{rule: r, patterns: r.Patterns}
			if r == ownConns {
				a.patterns = []string{substitute(r.Patterns[0], id.UID, id.GID)}
			}
			s.rules = append(s.rules, a)
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

// ownConns is the default rule that lets every user see its own
// connections' up and down events (wire.SysConnUp, wire.SysConnDown): what
// its own processes did is no secret to it.
var ownConns = &Rule{Allow: true, Any: true, Verbs: 1 << Subscribe, Patterns: []string{"$SYS.conn.*.%uid.>"},
	text: "allow any subscribe $SYS.conn.*.%uid.>: every uid sees its own connections come and go"}

// nameEvents is the default rule that lets every uid see names change
// owner: who owns a well-known name is no secret on a desktop bus, as on
// D-Bus.
var nameEvents = &Rule{Allow: true, Any: true, Verbs: 1 << Subscribe, Patterns: []string{"$SYS.name.>"},
	text: "allow any subscribe $SYS.name.>: every uid sees names change owner"}

// defaults returns the rules every policy ends with (docs/SECURITY.md).
func defaults(brokerUID uint32) []*Rule {
	uid := strconv.FormatUint(uint64(brokerUID), 10)
	return []*Rule{
		{Allow: true, UIDs: []uint32{brokerUID}, Verbs: allVerbs, Patterns: []string{">"},
			text: "allow uid " + uid + " all >: the broker's own uid may do everything but monitor"},
		// Every uid may ask the broker about its own connections: the
		// answers to these requests show another uid's only to the
		// broker's uid and to those a rule grants monitor on them.
		{Allow: true, Any: true, Verbs: 1 << Publish, Patterns: []string{"$SYS.req.conns", "$SYS.req.subs"},
			text: "allow any publish $SYS.req.conns $SYS.req.subs: every uid may ask about its own connections"},
		// Every uid may set its connections' last wills (publishing one
		// needs publish on its topic) and list the retained values it
		// may receive.
		{Allow: true, Any: true, Verbs: 1 << Publish, Patterns: []string{"$SYS.req.will", "$SYS.req.retained"},
			text: "allow any publish $SYS.req.will $SYS.req.retained: every uid may set its last wills and list the retained values it may receive"},
		ownConns,
		// Well-known names: any uid may own any name a rule before does
		// not deny it, ask for names and about them, and see their
		// owners change (docs/SECURITY.md).
		{Allow: true, Any: true, Verbs: 1 << Own, Patterns: []string{">"},
			text: "allow any own >: every uid may own names no rule denies it"},
		{Allow: true, Any: true, Verbs: 1 << Publish, Patterns: []string{"$SYS.req.name.*", "$SYS.req.names"},
			text: "allow any publish $SYS.req.name.* $SYS.req.names: every uid may ask for names and about them"},
		nameEvents,
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
		if !a.rule.Has(v) || (a.rule == ownConns || a.rule == nameEvents) && !strings.HasPrefix(pattern, "$SYS.") {
			// The broker's events reach only patterns that start with
			// "$SYS.": ownConns does not make ">" a pattern one may
			// subscribe to, only to receive nothing.
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
