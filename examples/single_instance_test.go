package examples_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/busd/busd/bus/bustest"
)

// examples/single-instance launched twice: the second hands its arguments
// (and a file) to the first and exits 0 once the first has printed them.
func TestSingleInstanceExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	first, out := start(t, env, "waiting for later launches", "single-instance", "one")
	doc := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(doc, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := run(t, env, "single-instance", "-open", doc, "two", "2")
	if !strings.Contains(second, "handed the arguments to the running instance") {
		t.Fatalf("the second printed %q", second)
	}
	third := run(t, env, "single-instance", "three")
	if !strings.Contains(third, "handed") {
		t.Fatalf("the third printed %q", third)
	}
	interrupt(t, first)
	got := out.String()
	for _, want := range []string{
		`first instance: ["one"]`,
		`["two" "2"]`,
		"  with file " + doc,
		`["three"]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the first printed\n%s\nwithout %q", got, want)
		}
	}
	if i, j := strings.Index(got, `["two" "2"]`), strings.Index(got, `["three"]`); i > j {
		t.Errorf("launches out of order:\n%s", got)
	}
}
