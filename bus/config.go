package bus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
)

// Config configures a Server. Use DefaultConfig and change what you need;
// docs/SECURITY.md explains each bound and what happens when it is reached.
type Config struct {
	// Name identifies the broker in INFO and logs.
	Name string
	// Limits bound every frame; they are announced to clients in INFO.
	Limits wire.Limits

	// MaxSubs bounds the subscriptions of one connection.
	MaxSubs int
	// MaxPending bounds the bytes queued for one connection. A message
	// that would take the queue past it is not queued (the subscription's
	// slow-consumer policy applies), except that an empty queue always
	// takes one message, so the largest frame still reaches a receiver
	// that keeps up.
	MaxPending int
	// MaxPendingFDs bounds the descriptors queued for one connection, in
	// the same way.
	MaxPendingFDs int

	// User bounds what the connections of one uid may make the broker
	// hold, all of them together.
	User UserBudget

	// AllowUIDs and AllowGIDs say who may connect at all: a connection is
	// served only if its uid is in AllowUIDs, or its primary gid or one of
	// its supplementary groups (as the kernel recorded them when it
	// connected: SO_PEERCRED, SO_PEERGROUPS) is in AllowGIDs. Anyone else
	// is refused as soon as it is accepted, with a fatal ERR permission
	// denied in place of INFO, before anything is charged to its user.
	// Both empty (the default) serve everyone who can open the socket.
	// Ids are numeric; root is not allowed unless listed.
	AllowUIDs, AllowGIDs []uint32

	// MaxConns bounds the connections served at once.
	MaxConns int
	// MaxMemory bounds the bytes the broker holds for all users together:
	// queued output, frames being read, buffers and subscriptions. Users
	// share it fairly (see docs/SECURITY.md).
	MaxMemory int64
	// MaxFDPayload bounds the size of one payload in a memfd (PUB flag
	// 0x02, docs/PROTOCOL.md section 6.1), announced in INFO as
	// max_fd_payload; 0: the broker takes none. The broker never maps or
	// copies such a payload, so it costs the broker no memory:
	// UserBudget.FDPayload bounds what it keeps alive.
	MaxFDPayload int64
	// MaxFDs bounds the descriptors the broker holds for all users
	// together: two per connection (its socket and the peer's pidfd) and
	// every passed descriptor until it is written to its last receiver
	// and closed. It must stay below the process's RLIMIT_NOFILE.
	MaxFDs int

	// HandshakeTimeout is how long a new connection has to send HELLO.
	HandshakeTimeout time.Duration
	// FrameTimeout is how long a frame may take to arrive whole once its
	// first byte has, and how long descriptors sent ahead of their frame
	// may wait for it.
	FrameTimeout time.Duration
	// WriteTimeout is how long a connection with output queued may go
	// without accepting a byte before it is closed as a slow consumer.
	WriteTimeout time.Duration
	// StallBudget is the longest a publisher's reader waits, per read
	// batch, for receivers that fell behind (see docs/SECURITY.md).
	StallBudget time.Duration

	// ReclaimMemory makes the broker ask the Go runtime to give freed
	// memory back to the system once what it holds has fallen by 64 MiB,
	// at most once a second (runtime/debug.FreeOSMemory), so the process
	// shrinks after a large backlog is gone. It affects the whole process:
	// busd sets it; a program embedding a Server may not want it.
	ReclaimMemory bool

	// Policy decides who may publish, subscribe, reply, listen, dial and
	// monitor (package policy); nil leaves only its default rules: the
	// broker's uid may do everything but monitor, others nothing.
	// Server.SetPolicy replaces it while the server runs.
	Policy *policy.Policy
	// MaxReplyPermits bounds the requests one connection may have
	// outstanding to answer (docs/SECURITY.md); past it the oldest can no
	// longer be answered.
	MaxReplyPermits int

	// MaxRetained bounds one retained value, and one last will: the bytes
	// of its topic, headers and payload (docs/PROTOCOL.md section 3.5).
	MaxRetained int
	// MaxNames bounds the well-known names one connection owns or queues
	// for, together (names.go); 0: 64. MaxNameQueue bounds the
	// connections queued for one name; 0: 64. UserBudget.Names bounds
	// those of all of a uid's connections.
	MaxNames, MaxNameQueue int
	// Activator starts the services of names nobody owns when a request
	// is sent to them (docs/PROTOCOL.md section 3.4); nil: none is
	// started, and such a request gets the no-responders answer at once.
	Activator Activator
	// ActivationTimeout bounds how long a request to a name being
	// activated is held for the service to take the name; 0: 25s.
	ActivationTimeout time.Duration

	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger

	hooks *hooks // for tests; nil otherwise
}

// hooks let a test run something at a point where another goroutine may
// come in between two steps of the broker, to show that nothing goes
// wrong there. Each is called only if set.
type hooks struct {
	subDecided  func()  // a SUB was decided under the policy it loaded, and is not listed yet
	applyPolicy func()  // SetPolicy is about to apply its policy to a connection
	accept      func()  // Serve is about to accept; holding it keeps clients in the accept queue
	brokerUID   *uint32 // the uid the server takes for its own: the tests' root then is another user
	// retainStep: a retained PUB's router is about to store its value
	// (stored false; it has looked its topic up), or has stored it and
	// is about to look the topic up again (stored true).
	retainStep func(stored bool)
}

// UserBudget bounds what the connections of one uid together may make the
// broker hold.
type UserBudget struct {
	// Conns bounds the connections of the uid, and Handshakes those of
	// them that have not finished their handshake.
	Conns, Handshakes int
	// Subs bounds the subscriptions of all the uid's connections.
	Subs int
	// Watchers bounds those of them whose pattern starts with "$SYS.":
	// each broker event is offered to every one (events.go), whoever's
	// it is, so their number is what every connection's coming and going
	// costs the broker.
	Watchers int
	// Groups bounds the uid's subscriptions in a queue group. Each group
	// matching a topic gets its own copy of every message on it, and
	// duplicate subscriptions are refused only within one group; so the
	// groups one uid may join on a pattern are what it may make every
	// publish to it cost.
	Groups int
	// Output bounds the bytes queued for the uid's connections to read:
	// messages, control frames and gap notices.
	Output int64
	// OutputFDs bounds the descriptors queued for the uid's connections.
	OutputFDs int
	// Input bounds the bytes the broker holds of what the uid's
	// connections sent or set up: read buffers, frames being read,
	// subscriptions.
	Input int64
	// InputFDs bounds the descriptors the uid's connections sent that no
	// frame has claimed yet or that are being routed.
	InputFDs int
	// Retained bounds the retained values the uid published that the
	// broker keeps, and RetainedBytes their bytes (topic, headers,
	// payload and retainedOverhead each): a value is charged to the uid
	// that published it last.
	Retained      int
	RetainedBytes int64
	// Names bounds the well-known names the uid's connections own or
	// queue for, together; 0: 1024.
	Names int
	// FDPayload bounds the bytes of payloads in memfds (Config.MaxFDPayload)
	// that the broker holds at once for the uid: each of its PUBs' while
	// the broker routes it (from acceptance until every receiver's copy
	// is queued, or a request held for an activation is delivered or
	// fails; a PUB without room waits for some to be given back, at most
	// FrameTimeout, then is refused), and each copy queued for one of its
	// connections, a subscriber's or a monitor's, until it is written or
	// dropped (one without room is lost under the subscription's policy,
	// never waited for). The pages are the publisher's, not the broker's;
	// this bounds how much of them a uid can make the broker keep alive
	// (docs/SECURITY.md).
	FDPayload int64
}

// Activator starts the services of names nobody owns (Config.Activator;
// nil: no activation).
type Activator interface {
	// Activate starts the service of name unless it has none, in which case it
	// returns false at once. It does not block. If the service ends, or fails to
	// start, before the broker reports that name has an owner (Owned), it calls
	// failed once with an error saying why (for example "exit status 3"); it may
	// call it from any goroutine.
	Activate(name string, failed func(err error)) bool
	// Owned tells the Activator that name has an owner: its pending start, if
	// any, succeeded; failed will not be called for it.
	Owned(name string)
}

// Defaults that do not depend on the machine.
const (
	defaultMaxPending    = 64 << 20
	defaultMaxPendingFDs = 4096
	// connMemory is what an open connection is charged when it is
	// accepted: its read buffer at its largest, its write batch, and its
	// state.
	connMemory = 80 << 10
	// fdsPerConn is what a connection costs in descriptors: its socket and
	// the pidfd of its peer.
	fdsPerConn = 2
	// defaultMaxFDPayload is the largest payload in a memfd by default:
	// the broker never touches its pages, so the bound is about what a
	// receiver should be asked to take in one message, not about the
	// broker's memory.
	defaultMaxFDPayload = 4 << 30
)

// DefaultConfig returns the configuration busd runs with by default. The
// broker-wide budgets are derived from the machine: MaxFDs from the
// process's RLIMIT_NOFILE (RaiseFDLimit first to get the most of it) and
// MaxMemory from the memory the process may use (a quarter of it).
func DefaultConfig() Config {
	m := probeMachine()
	maxFDs := max(m.fdLimit-reservedFDs, 64)
	maxConns := min(4096, maxFDs/4)
	return Config{
		Name:            "busd",
		Limits:          wire.DefaultLimits,
		MaxSubs:         65536,
		MaxPending:      defaultMaxPending,
		MaxPendingFDs:   defaultMaxPendingFDs,
		MaxReplyPermits: 4096,
		User: UserBudget{
			Conns:      max(maxConns/2, 1),
			Handshakes: 128,
			Subs:       262144,
			Watchers:   256,
			Groups:     1024,
			Output:     512 << 20,
			OutputFDs:  min(8192, maxFDs/2),
			Input:      256 << 20,
			InputFDs:   min(2048, maxFDs/4),

			Retained:      1024,
			RetainedBytes: 4 << 20,
			FDPayload:     defaultFDPayload(m),
		},
		MaxFDPayload:     defaultMaxFDPayload,
		MaxRetained:      wire.DefaultMaxRetained,
		MaxConns:         maxConns,
		MaxMemory:        max(m.memory/4, 256<<20),
		MaxFDs:           maxFDs,
		HandshakeTimeout: 5 * time.Second,
		FrameTimeout:     10 * time.Second,
		WriteTimeout:     10 * time.Second,
		StallBudget:      5 * time.Millisecond,
	}
}

// defaultFDPayload is a uid's held-payload budget by default: a quarter
// of the machine's memory (the pages a uid's held payloads keep alive are
// memory the system cannot use for anything else), and at least two of
// the largest payloads, so that a receiver can have one queued while the
// next is routed to it.
func defaultFDPayload(m machine) int64 {
	return max(m.ram/4, 2*defaultMaxFDPayload)
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	u := &c.User
	switch {
	case c.Limits.MaxFDs > wire.MaxFDsPerFrame:
		return fmt.Errorf("%w: Limits.MaxFDs %d is over the kernel's %d", ErrBadConfig, c.Limits.MaxFDs, wire.MaxFDsPerFrame)
	case c.Limits.MaxPayload == 0:
		return fmt.Errorf("%w: Limits.MaxPayload is 0", ErrBadConfig)
	case c.MaxConns < 1 || c.MaxSubs < 1 || c.MaxPending < 1 || c.MaxReplyPermits < 1:
		return fmt.Errorf("%w: MaxConns, MaxSubs, MaxPending and MaxReplyPermits must be positive", ErrBadConfig)
	case c.MaxPendingFDs < int(c.Limits.MaxFDs):
		return fmt.Errorf("%w: MaxPendingFDs %d is below Limits.MaxFDs %d", ErrBadConfig, c.MaxPendingFDs, c.Limits.MaxFDs)
	case u.Conns < 1 || u.Handshakes < 1 || u.Subs < 1 || u.Watchers < 1 || u.Groups < 1 || u.Output < 1 || u.Input < 1:
		return fmt.Errorf("%w: every User budget must be positive", ErrBadConfig)
	case u.OutputFDs < int(c.Limits.MaxFDs) || u.InputFDs < int(c.Limits.MaxFDs):
		return fmt.Errorf("%w: User.OutputFDs and User.InputFDs must be at least Limits.MaxFDs (%d)", ErrBadConfig, c.Limits.MaxFDs)
	case c.MaxFDs < fdsPerConn*c.MaxConns:
		return fmt.Errorf("%w: MaxFDs %d cannot hold MaxConns %d connections (%d descriptors each)",
			ErrBadConfig, c.MaxFDs, c.MaxConns, fdsPerConn)
	case c.MaxMemory < connMemory*int64(min(c.MaxConns, 64)):
		return fmt.Errorf("%w: MaxMemory %d is too small to serve connections (%d bytes each)", ErrBadConfig, c.MaxMemory, connMemory)
	case c.HandshakeTimeout <= 0 || c.FrameTimeout <= 0 || c.WriteTimeout <= 0:
		return fmt.Errorf("%w: HandshakeTimeout, FrameTimeout and WriteTimeout must be positive", ErrBadConfig)
	case c.MaxRetained < 1 || u.Retained < 1 || u.RetainedBytes < 1:
		return fmt.Errorf("%w: MaxRetained, User.Retained and User.RetainedBytes must be positive", ErrBadConfig)
	case c.StallBudget < 0:
		return fmt.Errorf("%w: StallBudget is negative", ErrBadConfig)
	case c.MaxFDPayload < 0:
		return fmt.Errorf("%w: MaxFDPayload is negative", ErrBadConfig)
	case u.FDPayload < c.MaxFDPayload:
		return fmt.Errorf("%w: User.FDPayload %d is below MaxFDPayload %d: the largest payload could never be held", ErrBadConfig, u.FDPayload, c.MaxFDPayload)
	}
	return nil
}
