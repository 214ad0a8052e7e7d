package bus

import (
	"time"

	"github.com/busd/busd/bus/wire"
)

// Pacing descriptor senders. A descriptor a client passes stays in its
// user's share of the broker's descriptors until the last receiver's copy
// is written or dropped and the closer has closed the broker's own: a
// burst of descriptor-carrying messages fills the share for as long as
// the writers and the closer take to catch up. A read that brings more
// descriptors than the share has room for cannot be taken back (the
// kernel discards what the control buffer cannot hold), so it ends the
// connection with an ERR over budget. Rather than let a burst run into
// that, the reader of a batch that routed descriptors waits, before it
// reads on, until its user's share has room for one more read's worth:
// the publisher is paced by the pool, as it is by a slow receiver.

// fdsPerRead is the most descriptors one read can bring: the kernel
// installs one sendmsg's at most (SCM_MAX_FD) per recvmsg.
const fdsPerRead = wire.MaxFDsPerFrame

// waitForFDRoom waits until c's user's share of the broker's descriptors
// has room for a read's worth, at most FrameTimeout: a share held for
// longer than that (by descriptors queued for receivers that do not
// read, or sent ahead of frames that never claim them) is a refusal, on
// the read that runs into it.
func (c *conn) waitForFDRoom() {
	ok, freed := c.srv.led.fdRoom(c.acct, fdsPerRead)
	if ok {
		return
	}
	c.srv.stats.fdWaits.Add(1)
	timer := time.NewTimer(c.srv.cfg.FrameTimeout)
	defer timer.Stop()
	for !ok {
		select {
		case <-freed:
		case <-c.quit:
			return
		case <-timer.C:
			return
		}
		ok, freed = c.srv.led.fdRoom(c.acct, fdsPerRead)
	}
}
