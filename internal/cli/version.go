package cli

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// NoRevision ends a version line whose build recorded no VCS revision.
const NoRevision = "revision unknown (go build in a git checkout records it; go install of a tagged version records only the version)"

// Version is the line `bus version` and `busd -version` print: the
// program's name, the module's version (a tag for go install
// module@version; from a checkout, a pseudo-version go build derives from
// the revision, or "(devel)" when it records none), the VCS revision and
// commit time the build recorded, and the Go release, as in
//
//	bus (devel), revision 0123abcd… (2026-12-05T22:10:03Z, with uncommitted changes), built with go1.26.8
func Version(program string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information), " + NoRevision
	}
	return versionLine(program, bi)
}

func versionLine(program string, bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)" // go run, or a test binary
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	rev := NoRevision
	if r := set["vcs.revision"]; r != "" {
		var notes []string
		if t := set["vcs.time"]; t != "" {
			notes = append(notes, t)
		}
		if set["vcs.modified"] == "true" {
			notes = append(notes, "with uncommitted changes")
		}
		rev = "revision " + r
		if len(notes) > 0 {
			rev += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	return fmt.Sprintf("%s %s, %s, built with %s", program, version, rev, bi.GoVersion)
}
