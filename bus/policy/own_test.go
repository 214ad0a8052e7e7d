package policy

import (
	"strings"
	"testing"
)

// The own verb: by default any uid may own any name, a rule may deny
// some, and "all" includes it; names' requests and events are open to all,
// without opening ">" to anyone.
func TestOwnVerb(t *testing.T) {
	var none *Policy
	other := none.For(Identity{UID: 1001}, 1000)
	if !other.Everything(Own) || !other.Decide(Own, "org.example.Editor").Allow {
		t.Error("by default another uid may not own names")
	}
	for _, topic := range []string{"$SYS.req.name.request", "$SYS.req.name.release", "$SYS.req.name.owner", "$SYS.req.names"} {
		if !other.Decide(Publish, topic).Allow {
			t.Errorf("by default another uid may not ask %s", topic)
		}
	}
	if !other.Decide(Subscribe, "$SYS.name.owner.x").Allow {
		t.Error("by default another uid may not watch names")
	}
	if d, filtered := other.DecidePattern(Subscribe, ">"); d.Allow || filtered {
		t.Errorf("the names' events rule opens > to another uid: %v %v", d.Allow, filtered)
	}
	if d, filtered := other.DecidePattern(Subscribe, "$SYS.>"); !d.Allow || !filtered {
		t.Errorf("$SYS.> for another uid: %v %v; want allowed, filtered", d.Allow, filtered)
	}

	p := mustParse(t, "deny any own org.freedesktop.>\nallow uid 7 own,publish org.freedesktop.Notifications\ndeny uid 8 all >")
	s := p.For(Identity{UID: 7}, 0)
	if s.Everything(Own) || s.Decide(Own, "org.freedesktop.Notifications").Allow {
		t.Error("the first rule does not deny")
	}
	if !s.Decide(Own, "org.example.x").Allow {
		t.Error("a name no rule speaks of is denied")
	}
	if d := p.For(Identity{UID: 8}, 0).Decide(Own, "org.example.x"); d.Allow || d.Rule.Line != 3 {
		t.Errorf("all does not include own: %+v", d)
	}
	if _, err := Parse("p", strings.NewReader("allow any owns x")); err == nil || !strings.Contains(err.Error(), "monitor, own") {
		t.Errorf("a bad verb: %v", err)
	}
}
