package clientlib

import (
	"context"
	"math/rand/v2"
	"time"
)

// A redial waits for the bus as Connect does (dialBus, discover.go): on
// the socket's directory with fsnotify, and with a backoff on a socket that
// is there and refuses (a killed broker leaves its socket behind). Each
// redial is bounded (redialTimeout); between redials that failed, the
// backoff below keeps the clients of a restarted bus from coming back in
// step.

// Redial backoff: the first attempt goes at once (a broker that said it is
// shutting down may have a successor already), then 10 ms, doubling to at
// most 250 ms, each jittered by ±25% so that the clients of a restarted
// bus do not all come back in step.
const (
	redialFirst = 10 * time.Millisecond
	redialMax   = 250 * time.Millisecond
)

// waitToRedial waits before redial attempt n (0 for the first) until it
// is time, or ctx ends (then it returns ctx's error).
func waitToRedial(ctx context.Context, attempt int) error {
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
