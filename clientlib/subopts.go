package clientlib

import (
	"errors"

	"github.com/busd/busd/bus/wire"
)

// SubOption configures a subscription, given to any of the Subscribe
// methods.
type SubOption func(*subConfig)

type subConfig struct {
	reuse        bool  // ReuseMessages
	payloadFiles bool  // PayloadFiles (largepayload.go)
	flags        uint8 // the SUB's flags: the broker's slow-consumer policy

	// Set by the package itself, never by a SubOption.
	inbox    *inbox // the connection's reply inbox: replies skip the queue
	listener bool   // a StreamListener's: counted apart in Restored
	onLoss   func() // told, on the reader goroutine, when the broker reports lost messages
}

// errReuseNeedsHandler refuses ReuseMessages where no handler returns the
// Msgs it was lent.
var errReuseNeedsHandler = errors.New("bus: ReuseMessages needs a handler: a lent Msg is taken back when the handler returns")

// DisconnectWhenSlow sets the subscription's slow-consumer policy to
// "disconnect": when the broker has no room left in the connection's queue
// for a message to this subscription, it closes the connection rather than
// drop the message. Nothing is ever lost silently: the connection ends
// with an error matching ErrSlowConsumer. With WithNoReconnect, Conn.Err,
// the error handler, and every call waiting on the connection return it,
// and the caller decides what to do, such as reconnect and resynchronise.
// By default the Conn reconnects by itself: the disconnect handler
// (WithDisconnectHandler) is told the error, which says that messages were
// lost, and it is the place to resynchronise.
//
// Without it the policy is "drop", the default: delivery is at most once
// and in order, and every loss is reported. A message the broker has no
// room for is dropped, and the subscription is later told how many it lost
// (see Subscription.Dropped and LostError), as it is for messages its own
// queue has no room for (WithSubscriptionLimits), which no policy changes.
//
// The policy belongs to the broker's subscription, so subscriptions on one
// connection to the same pattern and queue group share one only if their
// policies match.
func DisconnectWhenSlow() SubOption {
	return func(c *subConfig) { c.flags |= wire.SubDisconnect }
}

// AsMonitor makes the subscription a monitor, a passive watcher like
// dbus-monitor: it gets a copy of every message its pattern matches that
// the broker's policy lets it see, and nobody else notices. It does not
// count as a receiver (a request only monitors match still fails at once
// with ErrNoResponders, and Publish's receipt does not count it), takes no
// queue group's messages from its members nor any stream's dials, and
// never gets a message's descriptors (a payload in a memfd still arrives,
// as Data, or as PayloadFile with PayloadFiles): the last "Bus-FDs" field of
// Msg.Header, the broker's, says how many the message carried. Not
// Header.Get, which returns the first: a sender may set a "Bus-FDs" of
// its own, which the broker's then follows. Without one, the message
// carried none. The broker never waits for it: what its
// connection has no room for is dropped, and reported as for any
// subscription (Subscription.Dropped). Other connections' replies reach it
// only where the policy grants the monitor verb (docs/SECURITY.md).
//
// A monitor cannot be in a queue group, nor DisconnectWhenSlow.
func AsMonitor() SubOption {
	return func(c *subConfig) { c.flags |= wire.SubMonitor }
}

// errMonitorOptions refuses a monitor the broker would refuse.
var errMonitorOptions = errors.New("bus: a monitor subscription (AsMonitor) joins no queue group and is never DisconnectWhenSlow")

// subOptions applies opts.
func subOptions(opts []SubOption) subConfig {
	var cfg subConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}
