package bus

// What a connection's queue holds is charged to its user's output budget
// (and through it to the broker's memory) in grants, not message by
// message: a grant covers at least grantUnit bytes (grantFDsUnit
// descriptors), so the ledger's lock is taken about once per grantUnit of
// traffic, and the grant shrinks back as the writer catches up.
const (
	grantUnit    = 256 << 10
	grantFDsUnit = 64
)

// growGrantLocked makes the connection's grants cover size more bytes and
// nfds more descriptors than are pending, and reports whether it could.
func (c *conn) growGrantLocked(size, nfds int) bool {
	if need := int64(c.pending+size) - c.grant; need > 0 {
		got, why := c.grow(kOutput, need, grantUnit)
		if why != granted {
			c.lossReason = lossUserBytes
			if why == refusedPool {
				c.lossReason = lossMemory
			}
			return false
		}
		c.grant += got
	}
	if need := int64(c.pendingFDs+nfds) - c.grantFDs; nfds > 0 && need > 0 {
		got, why := c.grow(kOutputFDs, need, grantFDsUnit)
		if why != granted {
			c.lossReason = lossUserFDs
			return false
		}
		c.grantFDs += got
	}
	return true
}

// grow charges at least need of kind k, a whole unit if the budget allows.
func (c *conn) grow(k kind, need, unit int64) (int64, refusal) {
	led := c.srv.led
	if need < unit && led.try(c.acct, k, unit) == granted {
		return unit, granted
	}
	return need, led.try(c.acct, k, need)
}

// shrinkGrantLocked gives back what the grants hold beyond what is
// pending and a unit more, and all of it once nothing is pending, so that
// an idle connection holds none of its user's budget.
func (c *conn) shrinkGrantLocked() {
	c.shrink(kOutput, &c.grant, c.pending, grantUnit)
	c.shrink(kOutputFDs, &c.grantFDs, c.pendingFDs, grantFDsUnit)
}

func (c *conn) shrink(k kind, grant *int64, pending int, unit int64) {
	keep := int64(pending)
	if keep > 0 {
		keep += unit
	}
	if excess := *grant - keep; excess > unit || pending == 0 && excess > 0 {
		c.srv.led.uncharge(c.acct, k, excess)
		*grant -= excess
	}
}

// releaseGrantLocked gives back both grants whole.
func (c *conn) releaseGrantLocked() {
	c.srv.led.uncharge(c.acct, kOutput, c.grant)
	c.srv.led.uncharge(c.acct, kOutputFDs, c.grantFDs)
	c.grant, c.grantFDs = 0, 0
}
