package clientlib

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/busd/busd/bus/wire"
)

// Well-known names (docs/PROTOCOL.md section 3.4): a connection asks the
// broker for a name, one connection owns it at a time, others queue for
// it, and messages on "_NAME.<name>…" reach only its owner.

// NamePrefix begins the topics of well-known names: a message on
// NamePrefix+"org.example.Editor" or NamePrefix+"org.example.Editor.Open"
// reaches only the owner of org.example.Editor, and a subscription to one
// takes messages only while its connection owns the name.
const NamePrefix = wire.NamePrefix

// NameFlag is a flag of RequestName: D-Bus's RequestName flags.
type NameFlag uint8

// The flags of RequestName.
const (
	// AllowReplacement lets a later request with ReplaceExisting take the
	// name from this connection; it then goes to the head of the queue
	// (unless it asked with DoNotQueue, and then it loses the name).
	AllowReplacement = NameFlag(wire.NameAllowReplacement)
	// ReplaceExisting takes the name from an owner that allows it.
	ReplaceExisting = NameFlag(wire.NameReplaceExisting)
	// DoNotQueue: if the name cannot be had now, do not wait in its queue.
	DoNotQueue = NameFlag(wire.NameDoNotQueue)
)

// NameResult is the broker's answer to RequestName or ReleaseName.
type NameResult string

// The results.
const (
	PrimaryOwner NameResult = wire.NamePrimaryOwner // this connection owns the name now
	InQueue      NameResult = wire.NameInQueue      // it waits in the name's queue
	NameExists   NameResult = wire.NameExists       // another owns it, and this one did not queue
	AlreadyOwner NameResult = wire.NameAlreadyOwner // it owned the name already (its flags are updated)
	Released     NameResult = wire.NameReleased     // it no longer owns the name nor waits for it
	NonExistent  NameResult = wire.NameNonExistent  // nobody owns the name nor waits for it
	NotOwner     NameResult = wire.NameNotOwner     // others own or wait for it, this connection does neither
)

// Errors of the name requests.
var (
	// ErrNameForbidden is returned when the broker's policy does not let
	// this connection's user own the name (the own verb); it wraps the
	// broker's reason.
	ErrNameForbidden = errors.New("bus: name forbidden")
	// ErrNameLimit is returned when a bound refused the request: the
	// names one connection or one user may hold, or a name's queue.
	ErrNameLimit = errors.New("bus: too many names")
	// ErrNameNotRestored is reported to the error handler when, after a
	// reconnect, the broker does not give back a name the connection
	// owned: another connection took it while this one was away (the
	// error says whether this one now waits in its queue).
	ErrNameNotRestored = errors.New("bus: another connection owns the name now")
	// ErrNamesUnsupported is returned by a broker without names (its
	// INFO has no "names" key). It matches ErrNoResponders too.
	ErrNamesUnsupported = fmt.Errorf("%w: this broker has no well-known names", ErrNoResponders)
)

// NameHolder is who owns or waits for a name, as the broker knows it.
type NameHolder struct {
	ConnID        uint64
	PID, UID, GID int    // from SO_PEERCRED when the broker accepted it; PID 0 if in another pid namespace
	Name          string // its HELLO's name: the client chose it, it proves nothing
}

func holder(id *wire.NameIdentity) *NameHolder {
	if id == nil {
		return nil
	}
	return &NameHolder{ConnID: id.ConnID, PID: int(id.PID), UID: int(id.UID), GID: int(id.GID), Name: id.Name}
}

// NameOwner is a name's owner and queue.
type NameOwner struct {
	Name  string
	Owner *NameHolder  // nil: nobody owns it
	Queue []NameHolder // who waits for it, next owner first
	// Seq orders this answer with the name's changes: a NameChange whose
	// Seq is not greater happened before it.
	Seq uint64
}

func nameOwner(o *wire.NameOwner) NameOwner {
	n := NameOwner{Name: o.Name, Owner: holder(o.Owner), Seq: o.Seq, Queue: make([]NameHolder, len(o.Queue))}
	for i := range o.Queue {
		n.Queue[i] = *holder(&o.Queue[i])
	}
	return n
}

// NameChange is a change of a name's owner that WatchName reports.
type NameChange struct {
	Name     string
	Old, New *NameHolder // nil: nobody
	Seq      uint64
}

// nameAnswer sends the name request topic for name and decodes its
// answer into out, turning the broker's statuses into errors.
func (c *Conn) nameAnswer(ctx context.Context, topic string, req any, out any) error {
	body, _ := wire.AppendBody(nil, req) // a string and a number: it cannot fail
	r, err := c.askBroker(ctx, topic, body)
	if err != nil {
		return err
	}
	defer r.CloseFiles()
	if err := nameStatusError(topic, r); err != nil {
		return err
	}
	if err := wire.DecodeBody(r.Data, out); err != nil {
		return fmt.Errorf("bus: %s: %w", topic, err)
	}
	return nil
}

// nameStatusError returns the error the status of r, the broker's answer
// to the name request topic, says; nil for none.
func nameStatusError(topic string, r *Msg) error {
	switch status, reason := r.Header.Get(wire.StatusHeader), r.Header.Get(wire.ReasonHeader); status {
	case "":
		return nil
	case wire.StatusNoResponders:
		return fmt.Errorf("%w (%s)", ErrNamesUnsupported, topic)
	case wire.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrNameForbidden, reason)
	case wire.StatusNoRoom:
		return fmt.Errorf("%w: %s", ErrNameLimit, reason)
	default:
		return fmt.Errorf("bus: %s: the broker answered status %s: %s", topic, status, reason)
	}
}

// RequestName asks the broker for a well-known name: a valid topic
// without wildcards, at most 255 bytes and 32 tokens, not starting with
// "$" or "_". The result says whether this connection owns it now
// (PrimaryOwner, AlreadyOwner), waits in its queue (InQueue) or neither
// (NameExists). Messages on "_NAME.<name>" and the topics under it reach
// this connection's subscriptions to them only while it owns the name, so
// subscribe to them first: a queued connection then takes over with no
// gap when the owner goes.
//
// A name this connection owns or waits for is asked for again, with the
// same flags, when the connection reconnects (Restored.Names); it may then
// find another owner, and a name it does not own again is reported to the
// error handler (ErrNameNotRestored, or the refusal). The broker's policy may refuse the name
// (ErrNameForbidden), and bounds the names a connection, a user and a
// queue hold (ErrNameLimit).
func (c *Conn) RequestName(ctx context.Context, name string, flags ...NameFlag) (NameResult, error) {
	if err := wire.ValidName(name); err != nil {
		return "", err
	}
	r, err := c.requestName(ctx, name, flags...)
	return NameResult(r.Result), err
}

// requestName is RequestName, returning the broker's whole answer.
func (c *Conn) requestName(ctx context.Context, name string, flags ...NameFlag) (wire.NameReply, error) {
	var f NameFlag
	for _, x := range flags {
		f |= x
	}
	var r wire.NameReply
	if err := c.nameAnswer(ctx, wire.SysReqNameRequest, &wire.NameRequest{Name: name, Flags: uint8(f)}, &r); err != nil {
		return wire.NameReply{}, err
	}
	c.mu.Lock()
	switch NameResult(r.Result) {
	case PrimaryOwner, AlreadyOwner, InQueue:
		if c.heldNames == nil {
			c.heldNames = map[string]NameFlag{}
		}
		c.heldNames[name] = f
	default:
		delete(c.heldNames, name)
	}
	c.mu.Unlock()
	return r, nil
}

// ReleaseName gives up a name this connection owns, or leaves its queue:
// Released. The next in the queue owns it at once.
func (c *Conn) ReleaseName(ctx context.Context, name string) (NameResult, error) {
	if err := wire.ValidName(name); err != nil {
		return "", err
	}
	c.mu.Lock()
	delete(c.heldNames, name)
	c.mu.Unlock()
	var r wire.NameReply
	if err := c.nameAnswer(ctx, wire.SysReqNameRelease, &wire.NameRequest{Name: name}, &r); err != nil {
		return "", err
	}
	return NameResult(r.Result), nil
}

// NameOwner asks the broker who owns name and who waits for it.
func (c *Conn) NameOwner(ctx context.Context, name string) (NameOwner, error) {
	if err := wire.ValidName(name); err != nil {
		return NameOwner{}, err
	}
	var o wire.NameOwner
	if err := c.nameAnswer(ctx, wire.SysReqNameOwner, &wire.NameRequest{Name: name}, &o); err != nil {
		return NameOwner{}, err
	}
	return nameOwner(&o), nil
}

// Names asks the broker for the names that have an owner or a queue,
// sorted: at most 1000 of them, and how many there are.
func (c *Conn) Names(ctx context.Context) (names []NameOwner, total int, err error) {
	var l wire.NameList
	if err := c.nameAnswer(ctx, wire.SysReqNames, &wire.ListRequest{}, &l); err != nil {
		return nil, 0, err
	}
	names = make([]NameOwner, len(l.Names))
	for i := range l.Names {
		names[i] = nameOwner(&l.Names[i])
	}
	return names, int(l.Total), nil
}

// WatchName reports name's owner, then each change of it, until ctx ends;
// then the channel closes. The first NameChange has the owner when
// WatchName asked (New; nil if none) and Old nil. There is no race between
// the two: WatchName subscribes to the name's events first, then asks for
// the owner, and drops the events that the answer already covers (by
// their Seq), so no change is missed or reported twice. A consumer that
// does not keep up loses changes (the subscription's limits apply).
//
// Across a reconnect WatchName asks the broker again, as it did at first,
// and reports the owner then as one change from the last one it reported
// (if it differs): the changes while the connection was away are not seen
// one by one, and a restarted broker numbers its changes (Seq) anew.
func (c *Conn) WatchName(ctx context.Context, name string) (<-chan NameChange, error) {
	if err := wire.ValidName(name); err != nil {
		return nil, err
	}
	reconnected := c.nextReconnect() // before the SUB: a reconnect after it is seen
	sub, err := c.SubscribeSync(wire.SysNameOwner + name)
	if err != nil {
		return nil, err
	}
	// The SUB goes before the request on the same connection: the broker
	// handles it first, so every change after the answer is an event.
	o, err := c.NameOwner(ctx, name)
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	ch := make(chan NameChange, 1)
	ch <- NameChange{Name: name, New: o.Owner, Seq: o.Seq}
	w := &nameWatch{c: c, name: name, sub: sub, ch: ch, owner: o.Owner, last: o.Seq, reconnected: reconnected}
	go w.run(ctx)
	return ch, nil
}

// nameWatch is the goroutine of a WatchName.
type nameWatch struct {
	c           *Conn
	name        string
	sub         *Subscription
	ch          chan NameChange
	owner       *NameHolder     // the last owner reported
	last        uint64          // the Seq of the last change reported, or of the answer
	reconnected <-chan struct{} // closed by the next reconnect
}

func (w *nameWatch) run(ctx context.Context) {
	defer close(w.ch)
	defer w.sub.Unsubscribe()
	for {
		m, err := w.next(ctx)
		switch {
		case errors.Is(err, errReconnected):
			if !w.askAgain(ctx) {
				return
			}
			continue
		case err != nil:
			return
		}
		var ev wire.NameEvent
		if m.Origin.Conn != 0 || wire.DecodeBody(m.Data, &ev) != nil || ev.Seq <= w.last {
			continue
		}
		w.last = ev.Seq
		if !w.report(ctx, NameChange{Name: ev.Name, Old: holder(ev.Old), New: holder(ev.New), Seq: ev.Seq}) {
			return
		}
	}
}

// errReconnected is what next returns when the connection has reconnected.
var errReconnected = errors.New("reconnected")

// next waits for the next event, or for a reconnect.
func (w *nameWatch) next(ctx context.Context) (*Msg, error) {
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reconnected := w.reconnected // askAgain replaces it, maybe before this goroutine runs
	go func() {
		select {
		case <-reconnected:
			cancel()
		case <-nctx.Done():
		}
	}()
	m, err := w.sub.Next(nctx)
	if err != nil && ctx.Err() == nil && isClosed(reconnected) {
		return nil, errReconnected
	}
	return m, err
}

// askAgain asks the new broker for the owner, as WatchName did at first,
// and reports it if it differs from the last one reported.
func (w *nameWatch) askAgain(ctx context.Context) bool {
	w.reconnected = w.c.nextReconnect()
	o, err := w.c.NameOwner(ctx, w.name)
	if err != nil {
		// Lost again, or closed: the next reconnect asks again; a closed
		// Conn ends the subscription, and so the watch.
		return ctx.Err() == nil
	}
	w.last = o.Seq
	if sameHolder(w.owner, o.Owner) {
		return true
	}
	return w.report(ctx, NameChange{Name: w.name, Old: w.owner, New: o.Owner, Seq: o.Seq})
}

func (w *nameWatch) report(ctx context.Context, ch NameChange) bool {
	w.owner = ch.New
	select {
	case w.ch <- ch:
		return true
	case <-ctx.Done():
	case <-w.c.quit:
	}
	return false
}

// sameHolder reports whether a and b are the same connection, or both
// nobody.
func sameHolder(a, b *NameHolder) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ConnID == b.ConnID && a.PID == b.PID
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// namesToken begins the reply topics of the name requests a reconnect
// sends without waiting: "<inbox>.names.<name>", which no request's token
// is.
const namesToken = ".names."

// nameRestored handles the broker's answer to a name request a reconnect
// sent (restoreNamesLocked): a name this connection does not own again
// (another took it meanwhile, or a new policy keeps it) goes to the error
// handler, matching ErrNameNotRestored or the refusal's error, since
// nobody waits for that answer. It reports whether m was such an answer.
func (c *Conn) nameRestored(m *Msg) bool {
	prefix := c.info.Load().Inbox + namesToken
	if m.Origin.Conn != 0 || !strings.HasPrefix(m.Topic, prefix) {
		return false
	}
	defer m.CloseFiles()
	name := m.Topic[len(prefix):]
	err := nameStatusError(wire.SysReqNameRequest, m)
	if err == nil {
		var reply wire.NameReply
		if err = wire.DecodeBody(m.Data, &reply); err == nil {
			if reply.Result == wire.NamePrimaryOwner || reply.Result == wire.NameAlreadyOwner {
				return true
			}
			err = fmt.Errorf("%w (this connection: %s)", ErrNameNotRestored, reply.Result)
		}
	}
	c.cb.push(nil, fmt.Errorf("%w: %q, asked for again after a reconnect; request it again, or stop serving it", err, name))
	return true
}

// restoreNamesLocked queues, after the SUBs that restore the
// subscriptions, a request for each name the connection held, answered
// to nameRestored, and returns the frames' count. Under c.mu, from
// install.
func (c *Conn) restoreNamesLocked(info *wire.Info) int {
	if !info.Names || len(c.heldNames) == 0 || info.Inbox == "" {
		return 0
	}
	for name, f := range c.heldNames {
		body, _ := wire.AppendBody(nil, &wire.NameRequest{Name: name, Flags: uint8(f)})
		c.pre.Append(wire.AppendPub(nil, wire.SysReqNameRequest, info.Inbox+namesToken+name, nil, body, 0))
	}
	return len(c.heldNames)
}
