package examples_test

import (
	"strings"
	"testing"

	"github.com/busd/busd/bus/bustest"
)

// Two payloads of 16 MiB, one published from a slice and one written in
// place, reach the receiver whole: it prints the same size and checksum
// for each as the sender, in the order sent.
func TestLargePayloadExample(t *testing.T) {
	env := bustest.Start(t, binDir).Env()
	recv, out := start(t, env, "waiting for large payloads", "large-payload", "-recv")
	sent := run(t, env, "large-payload", "-size", "16MiB")
	waitExit(t, recv)
	if !strings.HasPrefix(sent, "large.slice: 16777216 bytes, sha256 ") || !strings.Contains(sent, "\nlarge.inplace: 16777216 bytes, sha256 ") {
		t.Fatalf("sender printed\n%s", sent)
	}
	if out.String() != sent {
		t.Errorf("receiver printed\n%s\nsender printed\n%s", out.String(), sent)
	}
}
