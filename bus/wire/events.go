package wire

import "time"

// Broker events: messages the broker publishes on "$SYS." topics, from
// connection 0, when something happens that a watcher may want to see.
// Each topic names what happened and, for a connection, its user's uid,
// so that a policy can let a user see its own connections
// ("$SYS.conn.*.%uid.>") and nobody else's.
const (
	// SysConnUp is the prefix of a connection's up event:
	// "$SYS.conn.up.<uid>.<conn id>", published once its HELLO is
	// accepted, with a ConnEvent.
	SysConnUp = "$SYS.conn.up."
	// SysConnDown is the prefix of a connection's down event:
	// "$SYS.conn.down.<uid>.<conn id>", published when it is closed, with
	// a ConnEvent whose Reason says why. Only connections that had an up
	// event have a down event.
	SysConnDown = "$SYS.conn.down."
	// SysConnBudget is the prefix of a connection's budget event:
	// "$SYS.conn.budget.<uid>.<conn id>", published the first time one of
	// its user's budgets refuses it something, with a ConnEvent whose
	// Reason is ReasonBudget and whose Text names the budget.
	SysConnBudget = "$SYS.conn.budget."
	// SysConnDrops is the prefix of a connection's drops event:
	// "$SYS.conn.drops.<uid>.<conn id>", published with a DropsEvent when
	// its subscriptions lose messages (the losses its gap notices report):
	// at the first loss, then at most once per DropsInterval, each event
	// summing the losses since the previous one. The loss of a drops
	// event is not itself reported in one (only in the gap notice).
	SysConnDrops = "$SYS.conn.drops."
	// SysListenUp is the prefix of "$SYS.listen.up.<stream name>",
	// published with a ListenEvent when a connection starts listening on
	// a stream name.
	SysListenUp = "$SYS.listen.up."
	// SysListenDown is the prefix of "$SYS.listen.down.<stream name>",
	// published with a ListenEvent when a listener leaves (UNSUB or close).
	SysListenDown = "$SYS.listen.down."
)

// Close reasons: a down event's Reason.
const (
	ReasonNormal        = "normal"         // the client closed, or went away
	ReasonSlowConsumer  = "slow_consumer"  // it fell too far behind (ERR slow consumer)
	ReasonBudget        = "budget"         // its user went over a budget (ERR budget, too many connections)
	ReasonProtocolError = "protocol_error" // it broke the protocol, or a timeout of it (any other fatal ERR)
	ReasonShutdown      = "shutdown"       // the broker is shutting down
	ReasonIOError       = "io_error"       // reading its socket failed
)

// ConnEvent is the body of SysConnUp, SysConnDown and SysConnBudget
// events.
type ConnEvent struct {
	ConnID uint64 `codec:"conn_id"`          // the connection's id, as in origins
	PID    uint32 `codec:"pid"`              // from SO_PEERCRED at accept; 0 if in another pid namespace than the broker's
	UID    uint32 `codec:"uid"`              // likewise
	GID    uint32 `codec:"gid"`              // likewise
	Name   string `codec:"name"`             // HELLO's name, chosen by the client
	Since  uint64 `codec:"since"`            // when the broker accepted it, in Unix nanoseconds
	Reason string `codec:"reason,omitempty"` // down and budget only: one of the Reason constants
	Text   string `codec:"text,omitempty"`   // down and budget only: the ERR's text, if any
}

// ListenEvent is the body of SysListenUp and SysListenDown events.
type ListenEvent struct {
	Stream string `codec:"stream"`  // the stream name
	ConnID uint64 `codec:"conn_id"` // the listener's connection
	PID    uint32 `codec:"pid"`     // its process, as in ConnEvent
	UID    uint32 `codec:"uid"`
	GID    uint32 `codec:"gid"`
}

// DropsInterval is the least time between two drops events of one
// connection: a subscriber losing messages all the time is one event a
// second, not one per loss.
const DropsInterval = time.Second

// MaxDropsSubs is how many subscriptions a DropsEvent lists at most: those
// that lost messages first in its span. Its Lost counts them all.
const MaxDropsSubs = 8

// DropsEvent is the body of a SysConnDrops event.
type DropsEvent struct {
	ConnID  uint64       `codec:"conn_id"` // as in ConnEvent
	PID     uint32       `codec:"pid"`
	UID     uint32       `codec:"uid"`
	GID     uint32       `codec:"gid"`
	Name    string       `codec:"name"`
	Since   uint64       `codec:"since"`
	Lost    uint64       `codec:"lost"`    // messages its subscriptions lost since its previous drops event
	Dropped uint64       `codec:"dropped"` // messages they lost since it connected
	Subs    []DroppedSub `codec:"subs"`    // at most MaxDropsSubs of the subscriptions that lost some
}

// DroppedSub is one subscription's losses in a DropsEvent.
type DroppedSub struct {
	SID     uint32 `codec:"sid"`     // the subscription's id
	Pattern string `codec:"pattern"` // its pattern
	Lost    uint64 `codec:"lost"`    // messages it lost in the event's span
	Reason  string `codec:"reason"`  // why the last of them was lost, as its gap notice's Bus-Reason says
}
