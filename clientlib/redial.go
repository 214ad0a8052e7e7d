package clientlib

import (
	"context"
	"math/rand/v2"
	"time"
)

// TO BE REPLACED BY DISCOVERY: this file is the stand-in for waiting on the
// bus's socket directory with fsnotify (waitForSocket in watch.go, on the
// discovery branch). When the branches merge, waitToRedial becomes: no wait
// before the first attempt; before a later one, waitForSocket(ctx, path)
// and, since a socket file may be there before its broker answers (a
// killed broker leaves its socket behind), the same backoff after a dial
// that failed on an existing socket.

// Redial backoff: the first attempt goes at once (a broker that said it is
// shutting down may have a successor already), then 10 ms, doubling to at
// most 250 ms, each jittered by ±25% so that the clients of a restarted
// bus do not all come back in step.
const (
	redialFirst = 10 * time.Millisecond
	redialMax   = 250 * time.Millisecond
)

// waitToRedial waits before redial attempt n (0 for the first) until it
// is time, or ctx ends (then it returns ctx's error). path is the socket
// the redial is for, which discovery watches.
func waitToRedial(ctx context.Context, path string, attempt int) error {
	_ = path
	if attempt == 0 {
		return ctx.Err()
	}
	d := redialMax
	if attempt < 6 {
		d = min(redialFirst<<(attempt-1), redialMax)
	}
	d = d*3/4 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
