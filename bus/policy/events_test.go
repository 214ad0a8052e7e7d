package policy

import "testing"

// By default a user may see its own connections' events, and nothing else
// of the broker's: not another uid's, and no events on a pattern that
// does not start with "$SYS." (which receives none).
func TestDefaultsShowOwnConnections(t *testing.T) {
	s := (*Policy)(nil).For(Identity{UID: 5, GID: 5}, 0)
	for _, c := range []struct {
		topic string
		allow bool
	}{
		{"$SYS.conn.up.5.17", true},
		{"$SYS.conn.down.5.17", true},
		{"$SYS.conn.up.6.18", false},
		{"$SYS.listen.up.printer", false},
	} {
		if d := s.Decide(Subscribe, c.topic); d.Allow != c.allow {
			t.Errorf("subscribe %s: %v by %v; want %v", c.topic, d.Allow, d.Rule, c.allow)
		}
	}
	if d, filtered := s.DecidePattern(Subscribe, "$SYS.>"); !d.Allow || !filtered {
		t.Errorf("$SYS.>: %v, filtered %v; want allowed topic by topic", d.Allow, filtered)
	}
	if d, _ := s.DecidePattern(Subscribe, ">"); d.Allow {
		t.Errorf(">: allowed by %v; want denied", d.Rule)
	}
	if d, _ := s.DecidePattern(Publish, "$SYS.conn.up.5.17"); d.Allow {
		t.Errorf("publish: allowed by %v", d.Rule)
	}
}
