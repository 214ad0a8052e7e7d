package main

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/busd/busd/clientlib"
)

// What bus monitor prints: a loss as a line of its own, text or JSON, and
// a message's fd count from the broker's Bus-FDs, the last field, which
// is not shown as a header; a Bus-FDs that is not last is the sender's.
func TestMonitorPrints(t *testing.T) {
	lost := seen{lost: &clientlib.LostError{Lost: 3, Reason: "full"}}
	withFDs := func() seen {
		return seen{m: &clientlib.Msg{Topic: "t", Data: []byte("d"),
			Header: clientlib.HeaderOf("Bus-FDs", "7", "k", "v", "Bus-FDs", "2")}}
	}
	for _, tc := range []struct {
		s    seen
		json bool
		want string
	}{
		{lost, false, "-- lost 3 messages: full\n"},
		{lost, true, `{"lost":3,"reason":"full"}` + "\n"},
		{withFDs(), false, "t 1B pid=0 uid=0 conn=0 fds=2 [Bus-FDs=7 k=v] d\n"},
		{withFDs(), true, `{"topic":"t","origin":{"conn":0,"pid":0,"uid":0,"gid":0},"headers":[["Bus-FDs","7"],["k","v"]],"fds":2,"text":"d"}` + "\n"},
		{seen{m: &clientlib.Msg{Topic: "t"}}, false, "t 0B pid=0 uid=0 conn=0 fds=0 \n"},
	} {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		var jp *jsonPrinter
		if tc.json {
			jp = newJSONPrinter(&buf)
		}
		if err := printSeen(w, jp, tc.s); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if buf.String() != tc.want {
			t.Errorf("printed %q; want %q", buf.String(), tc.want)
		}
	}
}
