package main

import (
	"errors"
	"testing"

	"github.com/busd/busd/clientlib"
)

func TestErrLineSaysBusOnce(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("no such topic"), "bus: no such topic"},
		{clientlib.ErrClosed, "bus: connection closed"},
		{&clientlib.LostError{Pattern: "a.>", Lost: 3, Total: 5, InBroker: true, Reason: "queue full"},
			`bus: slow consumer: the broker dropped 3 messages for subscription "a.>" (queue full); 5 lost in all`},
	} {
		if got := errLine(tc.err); got != tc.want {
			t.Errorf("errLine(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
