package bus

import (
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// Broker requests. A PUB to "$SYS.req.NAME" with a reply topic is not
// routed: the broker answers it itself, with a MSG from connection 0 to
// the requester's own subscriptions that match the reply topic, the way it
// answers a request nobody serves (noResponders). Only its own: a client
// must not be able to make the broker speak, in its own name, to other
// connections. Every other PUB to a "$SYS." topic is refused.
//
// The handlers are a table keyed by NAME, so that a request is added by
// writing its handler and its line in sysHandlers; an unknown NAME gets
// the no-responders answer, as a topic nobody serves would.

// sysHandler answers one kind of broker request from c, the requester,
// whose reader runs it; payload is the request's.
type sysHandler func(c *conn, payload []byte) sysAnswer

// sysHandlers are the broker requests served, by NAME.
var sysHandlers = map[string]sysHandler{
	"conn":  (*conn).answerConn,
	"info":  (*conn).answerInfo,
	"stats": (*conn).answerStats, // sysstats.go
	"conns": (*conn).answerConns,
	"subs":  (*conn).answerSubs,

	"will":     (*conn).answerWill,     // will.go
	"retained": (*conn).answerRetained, // retain.go
	// names.go
	"name.request": (*conn).answerNameRequest,
	"name.release": (*conn).answerNameRelease,
	"name.owner":   (*conn).answerNameOwner,
	"names":        (*conn).answerNames,
}

// sysAnswer is a broker request's answer.
type sysAnswer struct {
	status  string // Bus-Status, "" for none: the request was answered
	reason  string // Bus-Reason, "" for none: for people, what was wrong
	payload []byte
	// fds are the answer's descriptors, already charged (see
	// dupPeerPidFD), with the router's reference; nil for none.
	fds *fdSet
	// charged is what building it was charged to the requester's input
	// (chargeAnswer), given back once it is queued.
	charged int64
}

// sysPublish handles a PUB to a topic starting with SysPrefix: a broker
// request if it is one, a refusal (naming why) if not.
func (c *conn) sysPublish(f *wire.Frame, topic string) error {
	name, isReq := strings.CutPrefix(topic, wire.SysReqPrefix)
	switch {
	case !isReq:
		return wire.Errorf(wire.CodeReservedTopic, "topic %q: topics starting with %q belong to the broker; it answers requests to %q",
			topic, SysPrefix, wire.SysReqPrefix+"NAME")
	case len(f.Reply) == 0:
		return wire.Errorf(wire.CodeReservedTopic, "topic %q: a broker request needs a reply topic for its answer", topic)
	case f.NFDs > 0:
		return wire.Errorf(wire.CodeReservedTopic, "topic %q: a broker request carries no descriptors (this one has %d)", topic, f.NFDs)
	}
	if err := checkReplyAndHeaders(f); err != nil {
		return err
	}
	// Asking is publishing to the request's topic, as the policy sees it:
	// by default only the broker's own uid may ask about connections.
	if _, err := c.checkPublish(topic, f.Reply); err != nil {
		return err
	}
	c.srv.stats.sysRequests.Add(1)
	var a sysAnswer
	switch h := sysHandlers[name]; {
	case h == nil:
		a.status = wire.StatusNoResponders
	case f.Body != nil: // a large frame, read in pieces: far over any request's size
		most := wire.MaxSysReqPayload
		if name == "will" {
			most = wire.MaxWillRequest
		}
		a = badRequest(fmt.Sprintf("the frame is %d bytes (a payload of %d); a %s request is one frame of at most 64 KiB, its payload at most %d", f.Size(), f.PayloadLen, topic, most))
	default:
		a = h(c, f.Payload)
	}
	c.answer(f.Reply, &a)
	return nil
}

// fitList encodes a list answer with the first n of its entries, for the
// largest n whose encoding fits in the payload a client takes
// (max_payload): a list of long topics or patterns could otherwise make an
// answer no client may read. encode(n) encodes the list cut to its first n
// entries, marked truncated when n is short of them all.
func (c *conn) fitList(n int, encode func(n int) []byte) []byte {
	most := int(c.srv.cfg.Limits.MaxPayload)
	b := encode(n)
	if len(b) <= most || n == 0 {
		return b
	}
	lo, hi := 0, n // encode(hi) is too large; the empty list is taken to fit
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if len(encode(mid)) <= most {
			lo = mid
		} else {
			hi = mid
		}
	}
	return encode(lo)
}

// fitEntries is fitList for the list answer l, whose entries are all and
// whose truncated mark is truncated: set puts a cut of them, and the mark,
// into l.
func fitEntries[L, E any](c *conn, l L, all []E, truncated bool, set func(l *L, entries []E, truncated bool)) []byte {
	return c.fitList(len(all), func(n int) []byte {
		set(&l, all[:n], truncated || n < len(all))
		b, _ := wire.AppendBody(nil, &l) // numbers and strings: it cannot fail
		return b
	})
}

func badRequest(reason string) sysAnswer {
	return sysAnswer{status: wire.StatusBadRequest, reason: reason}
}

// answer delivers a to c's own subscriptions that match reply (toOwn), as
// a MSG from the broker. It releases the answer's descriptors: each queued copy holds its
// own reference, and they are closed once none is left.
func (c *conn) answer(reply []byte, a *sysAnswer) {
	if a.fds != nil {
		defer a.fds.Release()
	}
	if a.charged > 0 {
		defer c.srv.led.uncharge(c.acct, kInput, a.charged)
	}
	var hdrs wire.Headers
	if a.status != "" {
		hdrs = wire.AppendField(hdrs, wire.StatusHeader, a.status)
	}
	if a.reason != "" {
		hdrs = wire.AppendField(hdrs, wire.ReasonHeader, a.reason)
	}
	c.toOwn(reply, hdrs, a.payload, a.fds)
}

// answerConn answers "$SYS.req.conn": who holds the connection the
// request names, and a pidfd of its process.
func (c *conn) answerConn(payload []byte) sysAnswer {
	req, err := wire.DecodeConnRequest(payload)
	if err != nil {
		return badRequest(err.Error())
	}
	notFound := sysAnswer{status: wire.StatusNotFound, reason: fmt.Sprintf("no connection has id %d", req.ConnID)}
	t := c.srv.connByID(req.ConnID)
	if t == nil {
		return notFound
	}
	info, open := t.connInfo()
	if !open {
		return notFound
	}
	body, _ := wire.AppendBody(nil, &info) // numbers and a string: it cannot fail
	fds, err := c.dupPeerPidFD(t)
	var be *budgetError
	switch {
	case err == nil:
		return sysAnswer{payload: body, fds: fds}
	case errors.Is(err, unixsock.ErrNoPidFD):
		return sysAnswer{payload: body} // an old kernel: the identity without its pidfd
	case errors.Is(err, net.ErrClosed):
		return notFound // closed since it was looked up
	case errors.As(err, &be):
		return sysAnswer{status: wire.StatusNoRoom, reason: "no room for the pidfd: " + be.Error()}
	}
	// The process is out of descriptors (EMFILE), which the budgets are
	// there to prevent: worth a line in the log, and a retry later.
	c.log.Warn("duplicating a pidfd for $SYS.req.conn", "err", err)
	return sysAnswer{status: wire.StatusNoRoom, reason: "the broker could not duplicate the pidfd"}
}

// dupPeerPidFD duplicates t's pidfd for an answer to c. The duplicate is
// a descriptor the broker holds for c until it is written, so it is
// charged like one c sent: to c's user's input descriptors, and to its
// share of the broker's descriptors, before it exists; then, as a routed
// descriptor, to the share alone until the closer has closed it. A
// refused charge is a *budgetError.
func (c *conn) dupPeerPidFD(t *conn) (*fdSet, error) {
	led := c.srv.led
	if err := led.charge(c.acct, kInputFDs, 1); err != nil {
		return nil, err
	}
	fd, err := t.sock.DupPeerPidFD()
	if err != nil {
		led.uncharge(c.acct, kInputFDs, 1)
		return nil, err
	}
	led.handOver(c.acct, kInputFDs, 1)
	return newFDSet(c.srv, c.acct, []int{fd}), nil
}

// connInfo returns what a "$SYS.req.conn" answer says of c, and whether c
// is still open.
func (c *conn) connInfo() (wire.ConnInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wire.ConnInfo{
		ConnID: c.id, PID: c.origin.PID, UID: c.origin.UID, GID: c.origin.GID,
		Name: c.name, Since: uint64(c.since.UnixNano()),
	}, c.state == stateOpen
}

// setName records HELLO's name, for connInfo, and that the handshake is
// done, for connStats.
func (c *conn) setName(name string) {
	c.mu.Lock()
	c.name = name
	c.helloDone = true
	c.mu.Unlock()
}

// connByID returns the connection with id, or nil if none is served.
func (s *Server) connByID(id uint64) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// answerInfo answers "$SYS.req.info": the broker's identity, when it
// started, how many connections it holds and where it listens.
func (c *conn) answerInfo(payload []byte) sysAnswer {
	if err := wire.DecodeInfoRequest(payload); err != nil {
		return badRequest(err.Error())
	}
	s := c.srv
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	info := wire.BrokerInfo{
		Server: s.cfg.Name, Build: buildVersion(), Protocol: wire.Version,
		PID: s.origin.PID, UID: s.origin.UID, Started: uint64(s.started.UnixNano()),
		Conns: uint64(n), Sockets: []string{},
	}
	for _, l := range *s.serving.Load() {
		info.Sockets = append(info.Sockets, l.Path())
	}
	slices.Sort(info.Sockets)
	body, _ := wire.AppendBody(nil, &info) // numbers and strings: it cannot fail
	return sysAnswer{payload: body}
}

// buildVersion returns the main module's version from the build
// information, "" if the binary has none.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return ""
}
