package cli

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"(devel)", vcs("vcs.revision", "f1c22a0d", "vcs.time", "2026-12-05T22:10:03Z", "vcs.modified", "true"),
			"busd (devel), revision f1c22a0d (2026-12-05T22:10:03Z, with uncommitted changes), built with go1.26.8"},
		{"(devel)", vcs("vcs.revision", "f1c22a0d", "vcs.modified", "false"),
			"busd (devel), revision f1c22a0d, built with go1.26.8"},
		{"v0.1.0", nil, "busd v0.1.0, " + NoRevision + ", built with go1.26.8"},
		{"", nil, "busd (devel), " + NoRevision + ", built with go1.26.8"},
	} {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: tc.version}, Settings: tc.settings}
		if got := versionLine("busd", bi); got != tc.want {
			t.Errorf("versionLine(%q, %v) =\n%q; want\n%q", tc.version, tc.settings, got, tc.want)
		}
	}
}

// A test binary has build information but no revision.
func TestVersionOfThisBinary(t *testing.T) {
	if got := Version("x"); !strings.HasPrefix(got, "x ") || !strings.Contains(got, "revision") {
		t.Errorf("Version = %q", got)
	}
}
