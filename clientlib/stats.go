package clientlib

import (
	"context"
	"fmt"
	"time"

	"github.com/busd/busd/bus/wire"
)

// Stats are a Conn's own counters since Connect, across reconnects. The
// bytes are those that went through the socket: a payload in a memfd
// (see "Large payloads" in the package doc) counts its 8-byte size only.
type Stats struct {
	MsgsIn   uint64 // messages read from the broker (gap notices and answers included)
	BytesIn  uint64 // their bytes, as framed
	MsgsOut  uint64 // messages published on a live connection, requests included (buffered ones not)
	BytesOut uint64 // their bytes, as framed
	// Dropped counts the messages the subscriptions lost, in the broker
	// or in their own queues, as Subscription.Dropped counts them.
	Dropped    uint64
	Reconnects uint64 // reconnects that succeeded
}

// counts are what Stats reports of output and reconnects, under Conn.mu,
// where publishing and reconnecting already are: no atomic per message.
type counts struct {
	msgsOut, bytesOut, reconnects uint64
}

func (k *counts) countOut(topic, reply string, hdrs wire.Headers, data []byte) {
	k.msgsOut++
	k.bytesOut += uint64(wire.HeaderLen + len(topic) + len(reply) + len(hdrs) + len(data))
}

// Stats returns the connection's own counters. Those of messages read are
// as of the reader's last batch: a message being handed to its
// subscriptions may not be counted yet.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	k := c.counts
	c.mu.Unlock()
	return Stats{
		MsgsIn: c.in[0].Load(), BytesIn: c.in[1].Load(), MsgsOut: k.msgsOut, BytesOut: k.bytesOut,
		Dropped: c.dropped.Load(), Reconnects: k.reconnects,
	}
}

// BrokerStats are the broker's totals, as it answers "$SYS.req.stats"
// (docs/PROTOCOL.md, section 3.2, says what each counts).
type BrokerStats = wire.BrokerStats

// ConnStats is one connection as the broker sees it: who holds it and
// what went through it.
type ConnStats struct {
	ConnID        uint64
	PID, UID, GID int    // from SO_PEERCRED when the broker accepted it; PID 0 if in another pid namespace
	Name          string // its HELLO's name: the client chose it, it proves nothing
	Since         time.Time
	Subs          int
	MsgsIn        uint64        // messages it published
	BytesIn       uint64        // bytes it sent
	MsgsOut       uint64        // messages queued for it
	BytesOut      uint64        // bytes written to it
	Pending       int           // bytes queued for it now
	PendingFDs    int           // descriptors queued for it now
	Dropped       uint64        // messages its subscriptions lost in the broker
	Idle          time.Duration // since the broker last read from it
}

// SubStats is a pattern, in a queue group or none, and how many
// subscriptions it has.
type SubStats struct {
	Pattern string
	Group   string // "" for plain subscriptions
	Subs    int    // receivers: plain subscriptions, or the group's members
	// Monitors counts the passive watchers of the pattern (AsMonitor),
	// which no message waits for; Group is "" for them.
	Monitors int
}

// askBroker sends the broker request topic with payload body and returns
// the broker's answer, for the caller to read its status and close. An
// answer from anyone but the broker is an error: only the broker answers
// broker requests, so trust no one else's.
func (c *Conn) askBroker(ctx context.Context, topic string, body []byte) (*Msg, error) {
	r, err := c.exchange(ctx, topic, func(replyTo string, pin *session) error {
		return c.publishMsg(ctx, &Msg{Topic: topic, Reply: replyTo, Data: body}, true, pin)
	})
	if err != nil {
		return nil, err
	}
	if r.Origin.Conn != 0 {
		r.CloseFiles()
		return nil, fmt.Errorf("bus: %s: the answer came from connection %d, not from the broker", topic, r.Origin.Conn)
	}
	return r, nil
}

// brokerAnswer sends the broker request topic with payload v (nil for
// none) and decodes its answer into out.
func (c *Conn) brokerAnswer(ctx context.Context, topic string, v, out any) error {
	var body []byte
	if v != nil {
		body, _ = wire.AppendBody(nil, v) // numbers: it cannot fail
	}
	r, err := c.askBroker(ctx, topic, body)
	if err != nil {
		return err
	}
	defer r.CloseFiles()
	switch status := r.Header.Get(wire.StatusHeader); status {
	case "":
	case wire.StatusNoResponders:
		return fmt.Errorf("%w: this broker does not answer %s", ErrNoResponders, topic)
	default:
		return fmt.Errorf("bus: %s: the broker answered status %s: %s", topic, status, r.Header.Get(wire.ReasonHeader))
	}
	if err := wire.DecodeBody(r.Data, out); err != nil {
		return fmt.Errorf("bus: %s: %w", topic, err)
	}
	return nil
}

// BrokerStats asks the broker for its totals ("$SYS.req.stats"). The
// broker's policy decides who may: by default only its own uid, and the
// refusal of anyone else is an error wrapping a *ServerError. A broker
// that predates the request answers ErrNoResponders.
func (c *Conn) BrokerStats(ctx context.Context) (BrokerStats, error) {
	var st BrokerStats
	err := c.brokerAnswer(ctx, wire.SysReqStats, nil, &st)
	return st, err
}

// BrokerConns asks the broker for the connections it serves
// ("$SYS.req.conns"), sorted by id, asking page after page until it has
// them all. all says they are every uid's: the broker shows a uid other
// than its own only that uid's connections unless its policy grants
// monitor on the request. The default policy lets every uid ask.
func (c *Conn) BrokerConns(ctx context.Context) (conns []ConnStats, all bool, err error) {
	req := wire.ListRequest{Limit: wire.MaxListLimit}
	for {
		var list wire.ConnList
		if err := c.brokerAnswer(ctx, wire.SysReqConns, &req, &list); err != nil {
			return nil, false, err
		}
		for _, w := range list.Conns {
			conns = append(conns, ConnStats{
				ConnID: w.ConnID, PID: int(w.PID), UID: int(w.UID), GID: int(w.GID), Name: w.Name,
				Since: time.Unix(0, int64(w.Since)), Subs: int(w.Subs),
				MsgsIn: w.MsgsIn, BytesIn: w.BytesIn, MsgsOut: w.MsgsOut, BytesOut: w.BytesOut,
				Pending: int(w.Pending), PendingFDs: int(w.PendingFDs), Dropped: w.Dropped,
				Idle: time.Duration(w.IdleMS) * time.Millisecond,
			})
		}
		if !list.Truncated || len(list.Conns) == 0 {
			return conns, list.All, nil
		}
		req.After = list.Conns[len(list.Conns)-1].ConnID
	}
}

// BrokerSubs asks the broker for the patterns subscribed to
// ("$SYS.req.subs"), sorted by pattern and group, with how many
// subscriptions each has. The broker lists at most wire.MaxListLimit of
// them: total says how many there are. all is as for BrokerConns.
func (c *Conn) BrokerSubs(ctx context.Context) (subs []SubStats, total int, all bool, err error) {
	var list wire.SubList
	if err := c.brokerAnswer(ctx, wire.SysReqSubs, nil, &list); err != nil {
		return nil, 0, false, err
	}
	subs = make([]SubStats, len(list.Subs))
	for i, w := range list.Subs {
		subs[i] = SubStats{Pattern: w.Pattern, Group: w.Group, Subs: int(w.Subs), Monitors: int(w.Monitors)}
	}
	return subs, int(list.Total), list.All, nil
}
