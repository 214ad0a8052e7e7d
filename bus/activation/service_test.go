package activation

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseGood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, body string
		want       Service
	}{
		{"org.example.Editor.service", `# The editor.
name = org.example.Editor

   exec   =   /usr/bin/editor --service "a b" x"y z"w "q\"uo\\te" $HOME '*'
	# indented comment
user = alice
env = LANG=C.UTF-8
env=EMPTY=
env = WITH_EQUALS=a=b # not a comment
`, Service{Name: "org.example.Editor", Exec: []string{"/usr/bin/editor", "--service", "a b", "xy zw", `q"uo\te`, "$HOME", "'*'"},
			User: "alice", Env: []string{"LANG=C.UTF-8", "EMPTY=", "WITH_EQUALS=a=b # not a comment"}}},
		{"clock.service", "systemd_unit = busd-clock@1.service\nname = clock", Service{Name: "clock", SystemdUnit: "busd-clock@1.service"}},
		{"a.b-c.d_e.service", "name=a.b-c.d_e\nexec=/x\n", Service{Name: "a.b-c.d_e", Exec: []string{"/x"}}},
	} {
		got, err := Parse("/dir/"+tc.file, strings.NewReader(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		tc.want.Path = "/dir/" + tc.file
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s:\ngot  %#v\nwant %#v", tc.file, *got, tc.want)
		}
	}
}

// Every kind of bad file is refused, with an error that names the file,
// the line where there is one, and what is wrong.
func TestParseBad(t *testing.T) {
	t.Parallel()
	const ok = "name = n\nexec = /bin/true\n"
	for _, tc := range []struct {
		what, file, body string
		line             int
		want             string
	}{
		{"unknown key", "n.service", ok + "group = wheel\n", 3, `unknown key "group"`},
		{"no =", "n.service", "name = n\nexec /bin/true\n", 2, `"exec /bin/true" is not key = value`},
		{"key twice", "n.service", ok + "exec = /bin/false\n", 3, "exec given twice"},
		{"empty value", "n.service", "name = n\nexec =  \n", 2, "exec has no value"},
		{"empty key", "n.service", ok + "= x\n", 3, `unknown key ""`},
		{"no name", "n.service", "exec = /bin/true\n", 0, "no name = line"},
		{"name not the file's", "m.service", ok, 0, `name "n" does not match the file's name: it would be n.service`},
		{"nothing to start", "n.service", "name = n\n", 0, "neither exec nor systemd_unit"},
		{"both", "n.service", ok + "systemd_unit = n.service\n", 0, "both exec and systemd_unit"},
		{"relative program", "n.service", "name = n\nexec = true\n", 2, `the program "true" is not an absolute path`},
		{"open quote", "n.service", "name = n\nexec = /bin/echo \"a b\n", 2, "a double quote is not closed"},
		{"empty program", "n.service", "name = n\nexec = \"\" x\n", 2, "no program"},
		{"env without =", "n.service", ok + "env = FOO\n", 3, `env "FOO" is not KEY=VALUE`},
		{"env bad key", "n.service", ok + "env = 1FOO=x\n", 3, `"1FOO" is not a variable name`},
		{"env bad key char", "n.service", ok + "env = FO-O=x\n", 3, `"FO-O" is not a variable name`},
		{"env BUSD_SOCKET", "n.service", ok + "env = BUSD_SOCKET=/tmp/x\n", 3, "BUSD_SOCKET is set by busd"},
		{"env twice", "n.service", ok + "env = A=1\nenv = A=2\n", 4, "env: A given twice"},
		{"unit with user", "n.service", "name = n\nsystemd_unit = n.service\nuser = bob\n", 0, "user and env do not go with systemd_unit"},
		{"unit with env", "n.service", "name = n\nsystemd_unit = n.service\nenv = A=1\n", 0, "user and env do not go with systemd_unit"},
		{"unit not a service", "n.service", "name = n\nsystemd_unit = n.socket\n", 2, `"n.socket" is not the name of a service unit`},
		{"unit like an option", "n.service", "name = n\nsystemd_unit = --force.service\n", 2, "is not the name of a service unit"},
		{"unit bad char", "n.service", "name = n\nsystemd_unit = a/b.service\n", 2, "a character a unit name may not have"},
		{"wildcard name", "a.*.service", "name = a.*\nexec = /x\n", 0, "name:"},
		{"tail wildcard", "a.>.service", "name = a.>\nexec = /x\n", 0, "name:"},
		{"empty token", "a..b.service", "name = a..b\nexec = /x\n", 0, "name:"},
		{"reserved _", "_NAME.x.service", "name = _NAME.x\nexec = /x\n", 0, `starts with "_", which is reserved`},
		{"reserved $", "$SYS.x.service", "name = $SYS.x\nexec = /x\n", 0, `starts with "$", which is reserved`},
		{"long name", strings.Repeat("a", 256) + ".service", "name = " + strings.Repeat("a", 256) + "\nexec = /x\n", 0, "longer than 255 bytes"},
		{"NUL", "n.service", ok + "env = A=\x00\n", 3, "NUL byte"},
		{"not UTF-8", "n.service", ok + "env = A=\xff\n", 3, "not valid UTF-8"},
		{"too large", "n.service", ok + strings.Repeat("# padding\n", MaxFileSize/10+1), 0, "larger than 65536 bytes"},
		{"one long line", "n.service", ok + "# " + strings.Repeat("x", MaxFileSize+10), 0, "larger than 65536 bytes"},
	} {
		s, err := Parse("/dir/"+tc.file, strings.NewReader(tc.body))
		var fe *FileError
		switch {
		case err == nil:
			t.Errorf("%s: parsed as %+v; want an error", tc.what, s)
		case !errors.Is(err, ErrBadFile) || !errors.As(err, &fe):
			t.Errorf("%s: %v is not a *FileError matching ErrBadFile", tc.what, err)
		case fe.Path != "/dir/"+tc.file || fe.Line != tc.line || !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v (line %d); want the file, line %d and %q", tc.what, err, fe.Line, tc.line, tc.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"/bin/x":                 {"/bin/x"},
		" /bin/x  a\tb ":         {"/bin/x", "a", "b"},
		`/bin/x "" a`:            {"/bin/x", "", "a"},
		`/bin/x "a  b"c`:         {"/bin/x", "a  bc"},
		`/bin/x a\b "c\d" "\\"`:  {"/bin/x", `a\b`, `c\d`, `\`},
		`"/opt/my app/bin" -v`:   {"/opt/my app/bin", "-v"},
		`/bin/x $HOME ~ *.txt ;`: {"/bin/x", "$HOME", "~", "*.txt", ";"},
	} {
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "   ", `"/bin/x`, `/bin/x "a\"`} {
		if got, err := SplitCommand(in); err == nil {
			t.Errorf("SplitCommand(%q) = %q; want an error", in, got)
		}
	}
}
