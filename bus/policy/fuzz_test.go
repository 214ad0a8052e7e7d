package policy

import (
	"strings"
	"testing"

	"github.com/busd/busd/topics"
)

// FuzzPolicy parses any text as a policy and, when it parses, decides any
// topic with it: nothing panics, and deciding a topic as a pattern (a
// topic is a pattern that matches itself alone) agrees with deciding it
// as a topic, unfiltered.
func FuzzPolicy(f *testing.F) {
	f.Add(sample, "team.admin.x", uint32(1001), uint32(100))
	f.Add("deny uid 7 subscribe secret.>\nallow uid 7 all >", "secret.x", uint32(7), uint32(7))
	f.Add("allow any all user.%uid.>  # mine", "user.5.a", uint32(5), uint32(5))
	f.Add("allow gid 3 publish,dial a.*.c", "a.b.c", uint32(1), uint32(3))
	f.Fuzz(func(t *testing.T, text, topic string, uid, gid uint32) {
		p, err := Parse("fuzz", strings.NewReader(text))
		if err != nil {
			return
		}
		if topics.ValidTopic(topic) != nil {
			return
		}
		s := p.For(Identity{UID: uid, GID: gid, Groups: []uint32{gid + 1}}, 0)
		for v := range nVerbs {
			d := s.Decide(v, topic)
			if d.Rule == nil {
				t.Fatalf("%v %q: no rule decided", v, topic)
			}
			pd, filtered := s.DecidePattern(v, topic)
			if filtered || pd.Allow != d.Allow {
				t.Fatalf("%v %q: as a topic %v by %v; as a pattern %v (filtered %v) by %v", v, topic, d.Allow, d.Rule, pd.Allow, filtered, pd.Rule)
			}
			if s.Everything(v) && !d.Allow {
				t.Fatalf("%v %q denied by %v though Everything(%v)", v, topic, d.Rule, v)
			}
		}
	})
}
