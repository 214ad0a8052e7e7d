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
// same backoff keeps the clients of a restarted bus from coming back in
// step.

// The one backoff of the package, for redials and for a socket that
// refuses: 10 ms, doubling to at most 250 ms, each shortened at random by
// up to half so that the clients of a restarted bus do not all come back
// in step.
const (
	backoffMin = 10 * time.Millisecond
	backoffMax = 250 * time.Millisecond
)

// backoff returns how long to wait before retry n (1 for the first).
func backoff(n int) time.Duration {
	d := backoffMax
	if n < 6 {
		d = min(backoffMin<<max(n-1, 0), backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// waitToRedial waits before redial attempt n (0 for the first, which goes
// at once: a broker that said it is shutting down may have a successor
// already) until it is time, or ctx ends (then it returns ctx's error).
func waitToRedial(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	t := time.NewTimer(backoff(attempt))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
