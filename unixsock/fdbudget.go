package unixsock

import "fmt"

// FDBudget bounds the descriptors a [Conn]'s reads may install, so that a
// process holding many connections can keep what its peers send within its
// descriptor limit instead of running into RLIMIT_NOFILE (after which
// accept(2) and open(2) fail with EMFILE). The kernel installs a received
// descriptor only if the read's control buffer has room for it, so the Conn
// asks the budget before every recvmsg(2) how many it may install and sizes
// the buffer for exactly that many; descriptors beyond it are dropped by the
// kernel and the read fails with an error matching [ErrFDsTruncated] and
// [ErrFDBudget].
//
// A descriptor is charged to the budget from the read that installs it
// until one of these happens:
//   - the Conn closes it (at [Conn.Close], or because its read was truncated
//     or malformed) and calls ReleaseFDs for it;
//   - [Conn.TakeFDs] returns it: the charge passes to the caller, who must
//     call ReleaseFDs once it has closed or otherwise given up the
//     descriptor;
//   - the Conn hands it to the function set by [Conn.SetFDCloser]: the
//     charge passes to that function.
//
// The Conn calls ReserveFDs and ReleaseFDs from the goroutine that reads and
// ReleaseFDs also from the goroutine that calls Close, so an implementation
// shared by several connections must be safe for concurrent use. Neither
// method may block or call back into the Conn.
type FDBudget interface {
	// ReserveFDs is called right before each recvmsg attempt, including
	// attempts that find nothing to read, from the goroutine that reads,
	// possibly inside the runtime poller's callback: it must not block. It
	// returns how many descriptors (0..max) this read may install; max is
	// the connection's limit (see [WithMaxRecvFDs]). A result above max is
	// treated as max and the excess is released at once; a negative one as
	// 0.
	ReserveFDs(max int) int
	// ReleaseFDs gives back n descriptors of a reservation that the read
	// did not use, or descriptors the Conn itself closed. It must not
	// block.
	ReleaseFDs(n int)
}

// SetFDBudget makes every later read of c ask b how many descriptors it may
// install; see [FDBudget] for the accounting. nil means no budget: every
// read may install up to the connection's limit. A Conn that accepts no
// descriptors ([WithMaxRecvFDs](0)) never consults the budget.
//
// Set it before the first Read (typically right after [Listener.Accept]),
// not concurrently with one: SetFDBudget panics if c has already been read
// from, because descriptors queued before it would be released to a budget
// that was never charged for them.
func (c *Conn) SetFDBudget(b FDBudget) {
	if c.readStarted.Load() {
		panic("unixsock: SetFDBudget called after the first Read")
	}
	c.fdMu.Lock()
	c.budget = b
	c.fdMu.Unlock()
}

// reserveFDsLocked sets how many descriptors the next recvmsg may install:
// the connection's limit, or what the budget grants of it. Called only from
// doRead, under rmu.
func (c *Conn) reserveFDsLocked() {
	if c.budget == nil || c.maxFDs == 0 {
		c.rgrant = c.maxFDs
		return
	}
	n := c.budget.ReserveFDs(c.maxFDs)
	if n > c.maxFDs {
		c.budget.ReleaseFDs(n - c.maxFDs)
		n = c.maxFDs
	}
	c.rgrant = max(n, 0)
	c.rheld = c.rgrant
}

// settleFDsLocked gives back the part of the last attempt's reservation
// that it did not use, got being how many descriptors it installed, so that
// only installed descriptors stay charged. Called under rmu, without fdMu.
func (c *Conn) settleFDsLocked(got int) {
	if unused := c.rheld - got; unused > 0 {
		c.budget.ReleaseFDs(unused)
	}
	c.rheld = 0
}

// budgetTruncation is the error for a truncated read whose reservation,
// grant, was below the connection's limit.
func (c *Conn) budgetTruncation(grant int) error {
	return fmt.Errorf("%w: %w: the budget let this read accept %d descriptors, the connection's limit is %d",
		ErrFDsTruncated, ErrFDBudget, grant, c.maxFDs)
}
