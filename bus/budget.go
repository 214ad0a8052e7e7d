package bus

import (
	"fmt"
	"sync"
)

// kind is one thing a user's budget bounds.
type kind uint8

const (
	kConns kind = iota
	kHandshakes
	kSubs
	kWatchers // subscriptions to "$SYS." patterns, each offered every event
	kGroups   // subscriptions in a queue group, each group a copy of every matching message
	kOutput
	kOutputFDs
	kInput
	kInputFDs
	kRetained      // retained values kept (retain.go)
	kRetainedBytes // their bytes
	kFDPayload     // bytes of payloads in memfds held (payload.go)
	nKinds
)

var kindNames = [nKinds]string{
	kConns: "connections", kHandshakes: "connections in handshake", kSubs: "subscriptions", kWatchers: "$SYS. subscriptions", kGroups: "queue group subscriptions",
	kOutput: "output bytes", kOutputFDs: "output descriptors", kInput: "input bytes", kInputFDs: "input descriptors",
	kRetained: "retained values", kRetainedBytes: "retained bytes", kFDPayload: "held payload bytes",
}

// global says which broker-wide pool a kind also draws from.
func (k kind) global() pool {
	switch k {
	case kOutput, kInput, kRetainedBytes:
		return poolMemory
	case kInputFDs:
		return poolFDs
	}
	return noPool
}

type pool int8

const (
	noPool pool = iota - 1
	poolMemory
	poolFDs
	nPools
)

var poolNames = [nPools]string{poolMemory: "memory", poolFDs: "descriptors"}

// ledger keeps the accounts: what each uid's connections make the broker
// hold, and the broker-wide pools all uids share. One mutex guards it;
// charges are rare (connections and subscriptions come and go, output is
// charged in grants of grantUnit, descriptors once per read), so it is not
// on the per-message path.
//
// Users share a pool fairly, the way dbus-broker shares a user's quota
// between the users that send to it: a charge goes through only if, after
// it, the user holds at most a 1/(n+1) share of what the pool has left,
// where n is the number of users holding some of it. One user can thus
// never take a pool whole, and a user that holds nothing can always get
// something.
type ledger struct {
	mu     sync.Mutex
	limits [nKinds]int64
	users  map[uint32]*account
	pools  [nPools]struct {
		limit, used int64
		holders     int // users with a share of it
	}
	hits [int(nKinds) + int(nPools)]uint64 // charges refused, for Stats

	peak    int64         // the memory pool's use at its highest since the last reclaim
	large   int64         // bytes of large frames' pieces held (largeBody), freed or not
	freed   int64         // large frames' bytes freed since noteFreed last asked for a reclaim
	reclaim chan struct{} // asks reclaimLoop to run; nil without Config.ReclaimMemory
	// fdsFreed is closed when descriptors go back to the pool, for readers
	// waiting for room in it (fdRoom); nil when nobody waits.
	fdsFreed chan struct{}
	// payloadsFreed is likewise closed when held payload bytes
	// (kFDPayload) are given back (chargeOrWait).
	payloadsFreed chan struct{}
}

// account is what one uid's connections hold. Its fields are guarded by
// the ledger's mutex.
type account struct {
	uid   uint32
	used  [nKinds]int64
	share [nPools]int64 // what it holds of each pool
	refs  int           // connections using the account
	label string        // "uid 1000", for errors
}

// budgetError is a refused charge: it names the budget and its value.
type budgetError struct {
	budget string // "uid 1000's output bytes", "the broker's memory"
	limit  int64
	used   int64
	want   int64
}

func (e *budgetError) Error() string {
	if e.want == 0 {
		return fmt.Sprintf("%s budget is %d; %d in use", e.budget, e.limit, e.used)
	}
	return fmt.Sprintf("%s budget is %d; %d in use, %d more asked for", e.budget, e.limit, e.used, e.want)
}

func newLedger(cfg *Config) *ledger {
	l := &ledger{users: map[uint32]*account{}}
	u := &cfg.User
	l.limits = [nKinds]int64{
		kConns: int64(u.Conns), kHandshakes: int64(u.Handshakes), kSubs: int64(u.Subs), kWatchers: int64(u.Watchers), kGroups: int64(u.Groups),
		kOutput: u.Output, kOutputFDs: int64(u.OutputFDs), kInput: u.Input, kInputFDs: int64(u.InputFDs),
		kRetained: int64(u.Retained), kRetainedBytes: u.RetainedBytes, kFDPayload: u.FDPayload,
	}
	l.pools[poolMemory].limit = cfg.MaxMemory
	l.pools[poolFDs].limit = int64(cfg.MaxFDs)
	return l
}

// open returns uid's account, holding a reference until close.
func (l *ledger) open(uid uint32) *account {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.users[uid]
	if a == nil {
		a = &account{uid: uid, label: fmt.Sprintf("uid %d", uid)}
		l.users[uid] = a
	}
	a.refs++
	return a
}

// close drops a reference to a; the last one forgets it, once it holds
// nothing.
func (l *ledger) close(a *account) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.refs--
	l.forgetIdleLocked(a)
}

// forgetIdleLocked forgets a once no connection refers to it and it holds
// nothing: what its connections leave behind (descriptors the closer has
// yet to close, handed-over input) may come back after the last close.
func (l *ledger) forgetIdleLocked(a *account) {
	if a.refs == 0 && a.used == [nKinds]int64{} && a.share == [nPools]int64{} && l.users[a.uid] == a {
		delete(l.users, a.uid)
	}
}

// charge takes n of kind k for a, and of the pool k draws from, or
// refuses with a *budgetError and takes nothing.
func (l *ledger) charge(a *account, k kind, n int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.tryLocked(a, k, n) {
	case refusedUser:
		return &budgetError{budget: a.label + "'s " + kindNames[k], limit: l.limits[k], used: a.used[k], want: n}
	case refusedPool:
		p := k.global()
		pl := &l.pools[p]
		return &budgetError{
			budget: fmt.Sprintf("the broker's %s (%s's fair share of it, with %d users holding some)", poolNames[p], a.label, pl.holders),
			limit:  pl.limit, used: pl.used, want: n,
		}
	}
	return nil
}

// chargeOrWait is charge, for a kind with no pool given back by the
// closer (kFDPayload): if the user's budget refuses n while a holds some
// of k, which will be given back, it also returns a channel closed the
// next time some of k is; nil if waiting cannot help.
func (l *ledger) chargeOrWait(a *account, k kind, n int64) (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tryLocked(a, k, n) == granted {
		return nil, nil
	}
	err := &budgetError{budget: a.label + "'s " + kindNames[k], limit: l.limits[k], used: a.used[k], want: n}
	if a.used[k] == 0 || n > l.limits[k] {
		return nil, err
	}
	if l.payloadsFreed == nil {
		l.payloadsFreed = make(chan struct{})
	}
	return l.payloadsFreed, err
}

// chargeHeldCopy charges a the n bytes of a payload in a memfd and one
// descriptor of the broker's pool, for a copy of the payload's descriptor
// it holds (a monitor's, monitorPayload), or takes nothing and reports
// false. Never waits: a monitor's copy is dropped when there is no room.
func (l *ledger) chargeHeldCopy(a *account, n int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.used[kFDPayload]+n > l.limits[kFDPayload] || l.roomLocked(a, poolFDs) < 1 {
		l.hits[kFDPayload]++
		return false
	}
	a.used[kFDPayload] += n
	l.takeNowLocked(a, poolFDs, 1)
	return true
}

// refusal says which budget refused a charge.
type refusal uint8

const (
	granted     refusal = iota
	refusedUser         // the user's own budget for the kind
	refusedPool         // its share of a broker-wide pool
)

// try is charge for the per-message path: it says which budget refused,
// without building an error.
func (l *ledger) try(a *account, k kind, n int64) refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tryLocked(a, k, n)
}

func (l *ledger) tryLocked(a *account, k kind, n int64) refusal {
	if a.used[k]+n > l.limits[k] {
		l.hits[k]++
		return refusedUser
	}
	if p := k.global(); p != noPool {
		if n > l.roomLocked(a, p) {
			l.hits[int(nKinds)+int(p)]++
			return refusedPool
		}
		l.takeNowLocked(a, p, n)
	}
	a.used[k] += n
	return granted
}

// uncharge gives back n of kind k.
func (l *ledger) uncharge(a *account, k kind, n int64) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a.used[k] -= n
	if p := k.global(); p != noPool {
		l.giveLocked(a, p, n)
	}
	if k == kFDPayload && l.payloadsFreed != nil {
		close(l.payloadsFreed)
		l.payloadsFreed = nil
	}
	l.forgetIdleLocked(a)
}

func (l *ledger) giveLocked(a *account, p pool, n int64) {
	pl := &l.pools[p]
	a.share[p] -= n
	pl.used -= n
	if a.share[p] == 0 {
		pl.holders--
	}
	if p == poolMemory {
		l.noteMemoryLocked()
	}
	if p == poolFDs && l.fdsFreed != nil {
		close(l.fdsFreed)
		l.fdsFreed = nil
	}
	l.forgetIdleLocked(a)
}

// takeFixed takes n from pool p for a without the fair-share rule, for
// what every connection needs (its socket), bounded by MaxConns instead.
func (l *ledger) takeFixed(a *account, p pool, n int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	pl := &l.pools[p]
	if pl.used+n > pl.limit {
		l.hits[int(nKinds)+int(p)]++
		return &budgetError{budget: "the broker's " + poolNames[p], limit: pl.limit, used: pl.used, want: n}
	}
	l.takeNowLocked(a, p, n)
	return nil
}

// give gives back n of pool p taken for a outside any kind (takeFixed,
// or descriptors whose charge outlived their kind: see fdSet).
func (l *ledger) give(a *account, p pool, n int64) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	l.giveLocked(a, p, n)
	l.mu.Unlock()
}

// reserveFDs grants up to max input descriptors to a for one read: as
// many as its budget and its share of the broker's descriptors allow.
func (l *ledger) reserveFDs(a *account, max int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(int64(max), l.limits[kInputFDs]-a.used[kInputFDs], l.roomLocked(a, poolFDs))
	if n <= 0 {
		return 0
	}
	a.used[kInputFDs] += n
	l.takeNowLocked(a, poolFDs, n)
	return int(n)
}

// fdRoom reports whether a's share of the broker's descriptors has room
// for n more, or holds none but its connections' own, so that waiting
// would not make more. If neither, it also returns a channel that is
// closed the next time descriptors go back to the pool.
func (l *ledger) fdRoom(a *account, n int) (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	passed := a.share[poolFDs] - fdsPerConn*a.used[kConns]
	if l.roomLocked(a, poolFDs) >= int64(n) || passed <= 0 {
		return true, nil
	}
	if l.fdsFreed == nil {
		l.fdsFreed = make(chan struct{})
	}
	return false, l.fdsFreed
}

// roomLocked returns the most a may take from pool p under the fair-share
// rule: the largest n with (share+n)(holders+1) - share <= remaining.
func (l *ledger) roomLocked(a *account, p pool) int64 {
	pl := &l.pools[p]
	holders := int64(pl.holders)
	if a.share[p] == 0 {
		holders++
	}
	return (pl.limit-pl.used+a.share[p])/(holders+1) - a.share[p]
}

// takeNowLocked takes n from pool p for a, unchecked.
func (l *ledger) takeNowLocked(a *account, p pool, n int64) {
	if a.share[p] == 0 {
		l.pools[p].holders++
	}
	a.share[p] += n
	l.pools[p].used += n
	if p == poolMemory {
		l.peak = max(l.peak, l.pools[p].used)
	}
}

// fdRefusal describes the budget that keeps a from receiving descriptors
// now: its own, or its share of the broker's.
func (l *ledger) fdRefusal(a *account) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.limits[kInputFDs] - a.used[kInputFDs]; room < l.roomLocked(a, poolFDs) {
		return &budgetError{budget: a.label + "'s " + kindNames[kInputFDs], limit: l.limits[kInputFDs], used: a.used[kInputFDs]}
	}
	pl := &l.pools[poolFDs]
	return &budgetError{
		budget: fmt.Sprintf("the broker's %s (%s's fair share of it, with %d users holding some)", poolNames[poolFDs], a.label, pl.holders),
		limit:  pl.limit, used: pl.used,
	}
}

// handOver ends a's charge of n of kind k but leaves what it holds of the
// kind's pool, to be given back with give once the resource itself is
// gone: a descriptor routed to its receivers stops counting against its
// sender's input budget, but stays open (and in the broker's descriptor
// pool) until the last receiver has it.
func (l *ledger) handOver(a *account, k kind, n int64) {
	l.mu.Lock()
	a.used[k] -= n
	l.forgetIdleLocked(a)
	l.mu.Unlock()
}

// usage is a snapshot of the ledger for Stats.
type usage struct {
	memory, fds, payload int64
	users                int
	hits                 uint64
}

func (l *ledger) usage() usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := usage{memory: l.pools[poolMemory].used, fds: l.pools[poolFDs].used, users: len(l.users)}
	for _, h := range l.hits {
		u.hits += h
	}
	for _, a := range l.users {
		u.payload += a.used[kFDPayload]
	}
	return u
}
