package main

import (
	"errors"
	"fmt"
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
		{fmt.Errorf("the connection to the bus ended: %w", clientlib.ErrClosed), "bus: the connection to the bus ended: connection closed"},
		{fmt.Errorf("a.b: %w", fmt.Errorf("%w (%w)", clientlib.ErrNoResponders, clientlib.ErrClosed)), "bus: a.b: no responders (connection closed)"},
		{&clientlib.LostError{Pattern: "a.>", Lost: 3, Total: 5, InBroker: true, Reason: "queue full"},
			`bus: slow consumer: the broker dropped 3 messages for subscription "a.>" (queue full); 5 lost in all`},
	} {
		if got := errLine(tc.err); got != tc.want {
			t.Errorf("errLine(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
