package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestValidTopicAndPattern(t *testing.T) {
	long := strings.Repeat("a", MaxLen+1)
	deep := strings.Repeat("a.", MaxDepth) + "a"
	cases := []struct {
		in           string
		topic, patt  error // nil means valid
		topicTokenNo int
	}{
		{"foo", nil, nil, 0},
		{"foo.bar.baz", nil, nil, 0},
		{"app.editor.opened", nil, nil, 0},
		{"ünïcødé.日本", nil, nil, 0},
		{"_INBOX.abc.1", nil, nil, 0},
		{"$SYS.conn", nil, nil, 0},
		// wildcard characters inside a longer token are ordinary
		{"foo*", nil, nil, 0},
		{"foo**", nil, nil, 0},
		{"foo.**", nil, nil, 0},
		{"foo*bar", nil, nil, 0},
		{"*bar.>baz", nil, nil, 0},
		{"foo>", nil, nil, 0},
		{"foo.>>", nil, nil, 0},
		{"foo>.bar", nil, nil, 0},
		// whole-token wildcards
		{"*", ErrWildcard, nil, 1},
		{">", ErrWildcard, nil, 1},
		{"foo.*", ErrWildcard, nil, 2},
		{"foo.>", ErrWildcard, nil, 2},
		{"foo.*.bar", ErrWildcard, nil, 2},
		{"*.*.>", ErrWildcard, nil, 1},
		{">.bar", ErrWildcard, ErrWildcardNotLast, 1},
		{"foo.>.bar", ErrWildcard, ErrWildcardNotLast, 2},
		// empty tokens
		{"", ErrEmpty, ErrEmpty, 0},
		{".", ErrEmptyToken, ErrEmptyToken, 1},
		{".foo", ErrEmptyToken, ErrEmptyToken, 1},
		{"foo.", ErrEmptyToken, ErrEmptyToken, 2},
		{"a..b", ErrEmptyToken, ErrEmptyToken, 2},
		// forbidden characters
		{"foo bar", ErrBadChar, ErrBadChar, 1},
		{"foo.b\tr", ErrBadChar, ErrBadChar, 2},
		{"foo\n", ErrBadChar, ErrBadChar, 1},
		{"foo\x00", ErrBadChar, ErrBadChar, 1},
		{"foo\x7f", ErrBadChar, ErrBadChar, 1},
		{"a.b\u00a0c", ErrBadChar, ErrBadChar, 2},
		{"a.b\u0085", ErrBadChar, ErrBadChar, 2},
		{"a.\u2028", ErrBadChar, ErrBadChar, 2},
		{"a.b\u3000", ErrBadChar, ErrBadChar, 2},
		// format characters (Cf): invisible, or reordering what is shown
		{"a\u200bb", ErrBadChar, ErrBadChar, 1},
		{"\ufeffa", ErrBadChar, ErrBadChar, 1},
		{"a.\u2060b", ErrBadChar, ErrBadChar, 2},
		{"a.\u00adb", ErrBadChar, ErrBadChar, 2},
		{"a.\u202eb", ErrBadChar, ErrBadChar, 2},
		{"a.\U000e0041", ErrBadChar, ErrBadChar, 2},
		// other characters stay ordinary, invisible ones included
		{"a.\ufffd", nil, nil, 0},
		{"a.\u3164", nil, nil, 0},
		{"a.e\u0301", nil, nil, 0},
		{"a.\xff", ErrBadUTF8, ErrBadUTF8, 2},
		{"\xc3", ErrBadUTF8, ErrBadUTF8, 1},
		// bounds
		{long, ErrTooLong, ErrTooLong, 0},
		{deep, ErrTooDeep, ErrTooDeep, 0},
		{strings.Repeat("a.", MaxDepth-1) + "a", nil, nil, 0},
		{strings.Repeat("a", MaxLen), nil, nil, 0},
	}
	for _, c := range cases {
		name := c.in
		if len(name) > 20 {
			name = name[:20]
		}
		check := func(kind string, got, want error, token int) {
			t.Helper()
			if want == nil {
				if got != nil {
					t.Errorf("%s %q: got %v; want valid", kind, name, got)
				}
				return
			}
			if !errors.Is(got, want) || !errors.Is(got, ErrInvalid) {
				t.Errorf("%s %q: got %v; want %v", kind, name, got, want)
				return
			}
			var e *Error
			if !errors.As(got, &e) || e.Kind != kind || e.Token != token {
				t.Errorf("%s %q: got %#v; want kind %s token %d", kind, name, got, kind, token)
			}
		}
		check("topic", ValidTopic(c.in), c.topic, c.topicTokenNo)
		pTok := c.topicTokenNo
		check("pattern", ValidPattern(c.in), c.patt, pTok)
	}
}

func TestErrorMessages(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{ValidTopic("a..b"), `topic "a..b": token 2 is empty`},
		{ValidTopic(""), `topic "": is empty`},
		{ValidTopic("a.*"), `topic "a.*": token 2 is a wildcard, which only patterns may use`},
		{ValidPattern("a.>.c"), `pattern "a.>.c": token 2 is '>' but not the last token`},
		{ValidPattern("a b"), `pattern "a b": token 1 has a forbidden character U+0020 ' '`},
		{ValidGroup("q.1"), `group "q.1": has a forbidden character U+002E '.'`},
		{ValidPattern("a.b\tc"), `pattern "a.b\tc": token 2 has a forbidden character U+0009 '\t'`},
		{ValidTopic("a.\u200bb"), `topic "a.\u200bb": token 2 has a forbidden character U+200B '\u200b'`},
		{ValidTopic("\ufeffa"), `topic "\ufeffa": token 1 has a forbidden character U+FEFF '\ufeff'`},
		{ValidGroup("g\u2060"), `group "g\u2060": has a forbidden character U+2060 '\u2060'`},
		{ValidGroup("g\u00a0h"), `group "g\u00a0h": has a forbidden character U+00A0 '\u00a0'`},
		{ValidGroup(">"), `group ">": is a wildcard, which only patterns may use`},
	}
	for _, c := range cases {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("got %v; want %s", c.err, c.want)
		}
	}
}

func TestHugeTopicIsAnErrorNotAnAllocation(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	var err error
	allocs := testing.AllocsPerRun(10, func() { err = ValidTopic(huge) })
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("got %v; want ErrTooLong", err)
	}
	if len(err.Error()) > 200 {
		t.Fatalf("message is %d bytes; want it short", len(err.Error()))
	}
	if allocs > 2 { // the *Error and its shortened copy of the input
		t.Fatalf("%v allocations for a 1 MiB topic", allocs)
	}
}

func TestValidGroup(t *testing.T) {
	for _, ok := range []string{"workers", "q1", "a*b", "*a", ">>", "a>", "**", "日本"} {
		if err := ValidGroup(ok); err != nil {
			t.Errorf("ValidGroup(%q) = %v; want nil", ok, err)
		}
	}
	bad := map[string]error{
		"":                                 ErrEmpty,
		"a.b":                              ErrBadChar,
		"a b":                              ErrBadChar,
		"\xff":                             ErrBadUTF8,
		"*":                                ErrWildcard,
		">":                                ErrWildcard,
		"g\u200b":                          ErrBadChar,
		"\ufeffg":                          ErrBadChar,
		"g\u2060h":                         ErrBadChar,
		"g\x7f":                            ErrBadChar,
		"g\u2029":                          ErrBadChar,
		strings.Repeat("g", MaxGroupLen+1): ErrTooLong,
	}
	for in, want := range bad {
		if err := ValidGroup(in); !errors.Is(err, want) {
			t.Errorf("ValidGroup(%q) = %v; want %v", in, err, want)
		}
	}
}

func TestIsLiteral(t *testing.T) {
	cases := map[string]bool{
		"foo": true, "foo.bar": true, "foo*.bar": true, "a.>b": true,
		"*": false, ">": false, "foo.*": false, "foo.>": false, "foo.*.bar": false,
	}
	for in, want := range cases {
		if got := IsLiteral(in); got != want {
			t.Errorf("IsLiteral(%q) = %v; want %v", in, got, want)
		}
	}
}
