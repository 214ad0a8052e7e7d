package topics

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"foo", "foo", true},
		{"foo", "bar", false},
		{"*", "foo", true},
		{">", "foo", true},
		{">", "foo.bar", true},
		{"foo.>", "foo.bar", true},
		{"foo.>", "foo.bar.baz", true},
		{"foo.>", "foo", false},
		{"bar.>", "foo.bar", false},
		{"stats.>", "stats.test.22", true},
		{"stats.*.*", "stats.test.22", true},
		{"foo", "foo.bar", false},
		{"foo.bar", "foo", false},
		{"stats.test.foos", "stats.test.foos", true},
		{"stats.test.foo", "stats.test.foos", false},
		{"stats.test.*", "stats.test", false},
		{"stats.*", "stats.test.foos", false},
		{"stats.*.*.foos", "stats.test.foos", false},
		{"*.*", "a.b", true},
		{"*.*", "a", false},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.*.>", "a.b.c.d", true},
		// wildcard characters inside tokens are literal
		{"*bar", "*bar", true},
		{"foo*", "foo*", true},
		{"foo*", "foobar", false},
		{"foo*bar", "foo*bar", true},
		{"foo.***.bar", "foo.***.bar", true},
		{">bar", ">bar", true},
		{"foo>", "foo>", true},
		{"foo>", "foo.x", false},
		{"foo.>>>.bar", "foo.>>>.bar", true},
		// invalid input matches nothing
		{"foo.*", "foo.*", false},
		{"foo.>", "foo.>", false},
		{"foo..bar", "foo..bar", false},
		{"foo.>.bar", "foo.x.bar", false},
		{"", "", false},
		{"a b", "a b", false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v; want %v", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if !Match("a.*.c.>", "a.b.c.d.e") {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times", allocs)
	}
}
