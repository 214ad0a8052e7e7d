package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/busd/busd/topics"
)

const sample = `
# a shared bus for group 100, a private subtree per user
allow gid 100      publish,subscribe  team.>      # the team's topics
deny  uid 1001     publish            team.admin.>
allow any          all                user.%uid.>
allow uid 2000     reply              plugin.%uid.>
allow uid 2000     subscribe          plugin.%uid.>
allow uid 3000     monitor            _INBOX.>
`

func mustParse(t *testing.T, text string) *Policy {
	t.Helper()
	p, err := Parse("test.policy", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"allow uid 1 publish a\npermit uid 1 publish a", `test.policy:2: "permit": a rule starts with allow or deny`},
		{"allow uid alice publish a", `uid "alice": ids are decimal numbers`},
		{"allow uid 1,-2 publish a", `uid "-2": ids are decimal numbers`},
		{"\n\nallow any shout a", `test.policy:3: verb "shout"`},
		{"allow any publish", `needs verbs and at least one pattern`},
		{"allow somebody publish a", `"somebody": who the rule is for is uid N, gid N or any`},
		{"deny any publish a..b", `test.policy:1: pattern "a..b": token 2 is empty`},
		{"deny any publish a.%pid", `pattern "a.%pid": % may only start %uid or %gid`},
		{"allow", "a rule is: allow|deny"},
	} {
		_, err := Parse("test.policy", strings.NewReader(c.text))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v; want an ErrSyntax containing %q", c.text, err, c.want)
		}
	}
}

func TestParseKeepsRulesInOrder(t *testing.T) {
	p := mustParse(t, sample)
	if len(p.Rules) != 6 {
		t.Fatalf("%d rules, want 6", len(p.Rules))
	}
	r := p.Rules[1]
	if r.Line != 4 || r.Allow || len(r.UIDs) != 1 || r.UIDs[0] != 1001 || !r.Has(Publish) || r.Has(Subscribe) {
		t.Errorf("rule 2 = %+v", r)
	}
	if got := r.String(); got != "rule at line 4 (deny uid 1001 publish team.admin.>)" {
		t.Errorf("String() = %q", got)
	}
	if p.Rules[2].Has(Monitor) || !p.Rules[2].Has(Dial) {
		t.Errorf("all must mean every verb but monitor: %+v", p.Rules[2])
	}
}

func TestFirstMatchWins(t *testing.T) {
	p := mustParse(t, sample)
	member := p.For(Identity{UID: 1001, GID: 5, Groups: []uint32{100}}, 0)
	cases := []struct {
		s     *Subject
		v     Verb
		topic string
		allow bool
		line  int
	}{
		{member, Publish, "team.news", true, 3},
		{member, Publish, "team.admin.x", true, 3}, // the group rule comes first
		{member, Subscribe, "team.admin.x", true, 3},
		{member, Publish, "user.1001.x", true, 5},
		{member, Publish, "user.1002.x", false, 0},
		{member, Dial, "user.1001.chat", true, 5},
		{member, Monitor, "user.1001.x", false, 0}, // all is not monitor
		{p.For(Identity{UID: 1001, GID: 5}, 0), Publish, "team.admin.x", false, 4},
		{p.For(Identity{UID: 2000, GID: 2000}, 0), Reply, "plugin.2000.get", true, 6},
		{p.For(Identity{UID: 2000, GID: 2000}, 0), Reply, "plugin.2001.get", false, 0},
		{p.For(Identity{UID: 0, GID: 0}, 0), Publish, "anything", true, 0},
		{p.For(Identity{UID: 0, GID: 0}, 0), Monitor, "_INBOX.4.x", false, 0},
		{p.For(Identity{UID: 3000, GID: 3000}, 0), Monitor, "_INBOX.4.x", true, 8},
	}
	for i, c := range cases {
		d := c.s.Decide(c.v, c.topic)
		if d.Allow != c.allow || d.Rule.Line != c.line {
			t.Errorf("case %d: %v %q = %v by %v; want %v by line %d", i, c.v, c.topic, d.Allow, d.Rule, c.allow, c.line)
		}
	}
}

func TestDefaultsAlone(t *testing.T) {
	var none *Policy
	own, other := none.For(Identity{UID: 1000}, 1000), none.For(Identity{UID: 1001}, 1000)
	for v := range Monitor {
		if !own.Everything(v) || !own.Decide(v, "a.b").Allow {
			t.Errorf("the broker's uid may not %v", v)
		}
		if other.Everything(v) || other.Decide(v, "a.b").Allow {
			t.Errorf("another uid may %v", v)
		}
	}
	if own.Everything(Monitor) || own.Decide(Monitor, "_INBOX.1.x").Allow {
		t.Error("the broker's uid monitors without a rule saying so")
	}
	d := other.Decide(Publish, "a")
	if !strings.Contains(d.Rule.String(), "the default rule (deny any") {
		t.Errorf("denial names %q", d.Rule)
	}
}

func TestEverythingIsOnlyForAllowAll(t *testing.T) {
	p := mustParse(t, "deny uid 7 publish secret.>\nallow uid 7 all >")
	s := p.For(Identity{UID: 7}, 0)
	if s.Everything(Publish) || !s.Everything(Subscribe) {
		t.Errorf("Everything: publish %v (want false: a deny comes first), subscribe %v (want true)", s.Everything(Publish), s.Everything(Subscribe))
	}
}

func TestDecidePattern(t *testing.T) {
	p := mustParse(t, `
deny  uid 7 subscribe secret.>
allow uid 7 subscribe >
allow uid 8 subscribe pub.>
deny  uid 9 subscribe >
`)
	for _, c := range []struct {
		uid             uint32
		pattern         string
		allow, filtered bool
		line            int
	}{
		{7, "a.b", true, false, 3},
		{7, "secret.x", false, false, 2},
		{7, "secret.>", false, false, 2},
		{7, ">", true, true, 3},   // everything but secret.>
		{7, "*.x", true, true, 3}, // secret.x is denied
		{8, "pub.a.>", true, false, 4},
		{8, ">", true, true, 4}, // pub.> yes, the rest by the default deny
		{8, "other", false, false, 0},
		{9, ">", false, false, 5},
		{0, ">", true, false, 0}, // the broker's uid
	} {
		d, filtered := p.For(Identity{UID: c.uid}, 0).DecidePattern(Subscribe, c.pattern)
		if d.Allow != c.allow || filtered != c.filtered || d.Rule.Line != c.line {
			t.Errorf("uid %d %q = allow %v filtered %v by %v; want %v %v by line %d",
				c.uid, c.pattern, d.Allow, filtered, d.Rule, c.allow, c.filtered, c.line)
		}
	}
}

func TestInvalidInputIsDenied(t *testing.T) {
	s := mustParse(t, "allow any all >").For(Identity{}, 0)
	if s.Decide(Publish, "a..b").Allow {
		t.Error("an invalid topic was allowed")
	}
	if d, _ := s.DecidePattern(Subscribe, "a.>.b"); d.Allow {
		t.Error("an invalid pattern was allowed")
	}
}

// A "#" inside a word is refused rather than read as a comment: cut
// there, "deny any subscribe chan#ops" would deny "chan" and leave
// "chan#ops" (a valid topic) to the rules after it. A word starting with
// "#" starts a comment, as at the start of a line.
func TestHashInsideAWordIsRefused(t *testing.T) {
	for _, text := range []string{
		"deny any subscribe chan#ops\nallow any all >",
		"deny any publish secret.>#no one\nallow any all >",
		"deny any#everyone publish x",
		"deny uid 1#2 publish x",
	} {
		_, err := Parse("test.policy", strings.NewReader(text))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "test.policy:1:") ||
			!strings.Contains(err.Error(), "# starts a comment only at the start of a word") {
			t.Errorf("Parse(%q) = %v; want line 1 refused for its #", text, err)
		}
	}
	p := mustParse(t, "deny any subscribe chan.> #ops\n  # deny any all >\nallow any all >")
	if len(p.Rules) != 2 || len(p.Rules[0].Patterns) != 1 || p.Rules[0].Patterns[0] != "chan.>" || p.Rules[1].Line != 3 {
		t.Errorf("comments after a word and on a line of their own: rules %+v", p.Rules)
	}
	if _, err := Parse("test.policy", strings.NewReader("deny any subscribe #ops")); err == nil || !strings.Contains(err.Error(), "at least one pattern") {
		t.Errorf("a rule whose only pattern is a comment: %v; want refused", err)
	}
}

// A line that a terminal or editor would show as something else is
// refused: a carriage return inside it draws what follows over its start,
// so an active rule can pass for a comment ("allow any all >\r# off"
// shows as "# off"), or a comment for a rule; the error quotes the line so
// the log does not do the same.
func TestLinesThatLookLikeSomethingElseAreRefused(t *testing.T) {
	for _, text := range []string{
		"allow any all >   \r# disabled",
		"# old rule\rdeny any publish secret.>",
		"allow any all > # \x1b[2K\x1b[1Gall off",
		"# note\u2028deny any publish x",
		"allow any\vall >",
		"allow any all >\u0085",
	} {
		_, err := Parse("test.policy", strings.NewReader(text))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "control character") ||
			strings.ContainsAny(err.Error(), "\r\x1b\v\u2028\u0085") {
			t.Errorf("Parse(%q) = %v; want refused for its control character, quoted", text, err)
		}
	}
	// CRLF line ends and tabs are only line ends and spacing.
	p := mustParse(t, "allow\tany\tpublish a.>\r\ndeny any all > # end\r\n")
	if len(p.Rules) != 2 || p.Rules[0].Patterns[0] != "a.>" || p.Rules[1].Patterns[0] != ">" {
		t.Errorf("CRLF and tabs: rules %+v", p.Rules)
	}
}

// The connections of one identity share one Subject. A Subject holds
// every rule that concerns its identity, uncharged: one per connection
// would let a user make the broker hold the policy again for each
// connection it opens (100 KiB each for a policy of 1000 rules).
func TestSubjectsAreSharedByIdentity(t *testing.T) {
	p := mustParse(t, sample)
	id := Identity{UID: 2000, GID: 5, Groups: []uint32{100}}
	s := p.For(id, 0)
	if again := p.For(Identity{UID: 2000, GID: 5, Groups: []uint32{100}}, 0); again != s {
		t.Error("two connections of one identity got Subjects of their own")
	}
	if n := testing.AllocsPerRun(100, func() { p.For(id, 0) }); n != 0 {
		t.Errorf("For allocates %v times for an identity it has seen", n)
	}
	// Another uid, gid, group list or broker uid is another Subject, with
	// its own %uid.
	for _, other := range []struct {
		id     Identity
		broker uint32
	}{
		{Identity{UID: 2001, GID: 5, Groups: []uint32{100}}, 0},
		{Identity{UID: 2000, GID: 6, Groups: []uint32{100}}, 0},
		{Identity{UID: 2000, GID: 5}, 0},
		{Identity{UID: 2000, GID: 5, Groups: []uint32{100}}, 2000},
	} {
		if p.For(other.id, other.broker) == s {
			t.Errorf("%+v on a broker of uid %d shares the Subject of %+v", other.id, other.broker, id)
		}
	}
	if !s.Decide(Reply, "plugin.2000.x").Allow || p.For(Identity{UID: 2001, GID: 2001}, 0).Decide(Reply, "plugin.2000.x").Allow {
		t.Error("%uid is not the Subject's own")
	}
	if !p.For(Identity{UID: 2000, GID: 5}, 2000).Decide(Publish, "anything").Allow || s.Decide(Publish, "anything").Allow {
		t.Error("the default rules do not follow the broker's uid")
	}
}

// DecidePattern's verdict on a whole pattern, when it says the rules do
// not split it, is Decide's on every topic the pattern matches: a
// subscription accepted without a filter receives nothing the rules deny,
// and one refused nothing they allow. Random rules and patterns over
// tokens that are wildcards, literals, and literals that look like
// wildcards ("a>", ">a", "*a", "a*"), against every topic of up to 5
// tokens.
func TestDecidePatternAgreesWithDecide(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	literals := []string{"a", "b", "a>", ">a", "*a", "a*"}
	pattern := func() string {
		n := 1 + r.IntN(4)
		toks := make([]string, n)
		for i := range toks {
			switch k := r.IntN(10); {
			case k < 2:
				toks[i] = "*"
			case k < 3 && i == n-1:
				toks[i] = ">"
			default:
				toks[i] = literals[r.IntN(len(literals))]
			}
		}
		return strings.Join(toks, ".")
	}
	var all []string
	var grow func(prefix string, depth int)
	grow = func(prefix string, depth int) {
		for _, l := range literals[:4] {
			topic := l
			if prefix != "" {
				topic = prefix + "." + l
			}
			all = append(all, topic)
			if depth < 5 {
				grow(topic, depth+1)
			}
		}
	}
	grow("", 1)
	for range 1000 {
		var text strings.Builder
		for range 1 + r.IntN(4) {
			fmt.Fprintf(&text, "%s uid 7 subscribe", []string{"allow", "deny"}[r.IntN(2)])
			for range 1 + r.IntN(2) {
				text.WriteString(" " + pattern())
			}
			text.WriteString("\n")
		}
		s := mustParse(t, text.String()).For(Identity{UID: 7}, uint32(7*r.IntN(2)))
		pat := pattern()
		d, filtered := s.DecidePattern(Subscribe, pat)
		if filtered {
			continue // each topic is decided by Decide
		}
		for _, topic := range all {
			if got := s.Decide(Subscribe, topic); topics.Match(pat, topic) && got.Allow != d.Allow {
				t.Fatalf("rules:\n%spattern %q is %v as a whole (%v), but its topic %q is %v (%v)",
					text.String(), pat, d.Allow, d.Rule, topic, got.Allow, got.Rule)
			}
		}
	}
}

// The default rules let every uid ask the broker for the lists of its own
// connections and subscriptions, and nothing else under $SYS.; a policy
// line before them can still deny it.
func TestDefaultsLetEveryUIDAskForItsOwnLists(t *testing.T) {
	var none *Policy
	other := none.For(Identity{UID: 1001}, 1000)
	for topic, want := range map[string]bool{
		"$SYS.req.conns": true, "$SYS.req.subs": true, "$SYS.req.stats": false, "$SYS.req.conn": false,
	} {
		if d := other.Decide(Publish, topic); d.Allow != want {
			t.Errorf("another uid may publish to %s: %v by %s; want %v", topic, d.Allow, d.Rule, want)
		}
	}
	if other.Decide(Monitor, "$SYS.req.conns").Allow || other.Decide(Subscribe, "$SYS.req.conns").Allow {
		t.Error("the default rules grant more than publish on the lists")
	}
	denied := mustParse(t, "deny any publish $SYS.req.>").For(Identity{UID: 1001}, 1000)
	if denied.Decide(Publish, "$SYS.req.conns").Allow {
		t.Error("a policy line could not deny what the default rules allow")
	}
}
