package main

import (
	"strings"
	"testing"

	"github.com/busd/busd/bus/bustest"
)

// -max-fd-payload sets the largest payload in a memfd, announced in INFO
// as max_fd_payload, 0 included (the broker takes none); a negative size
// is a usage error.
func TestMaxFDPayloadFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want uint64
	}{
		{nil, 4 << 30},
		{[]string{"-max-fd-payload", "12345"}, 12345},
		{[]string{"-max-fd-payload", "0"}, 0},
		{[]string{"-max-fd-payload", "17179869184"}, 16 << 30}, // over the default uid budget: busd raises it
	} {
		b := bustest.StartWith(t, binDir, bustest.Options{Args: tc.args})
		c := b.Connect(t, "max-fd-payload")
		if c.Info.MaxFDPayload != tc.want {
			t.Errorf("busd %q: INFO max_fd_payload %d; want %d", tc.args, c.Info.MaxFDPayload, tc.want)
		}
		c.Close()
		b.Stop(t)
	}
	code, out := runBusd(t, "-max-fd-payload", "-1")
	if code != 2 || !strings.Contains(out, "-max-fd-payload -1 is negative") || strings.Contains(out, "listening") {
		t.Errorf("busd -max-fd-payload -1: exit %d, output:\n%s\nwant exit 2 and why", code, out)
	}
}
