package harness

import (
	"fmt"
	"slices"
	"time"
)

// Metrics of a result; a scenario reports the ones that apply.
//
// The paired scenarios (stalled-sub, slow-sub) measure the fast subscriber
// twice in each repetition, alone and with the laggard connected: MsgsPerS
// is with it, AloneMsgsPerS without, and Ratio, the headline, the one over
// the other, so that drift between runs cannot pass for the laggard's cost.
//
// Lost is what the measuring subscribers did not receive before the
// publisher's end marker, summed over subscribers and, in a median, over
// every repetition, so that a loss in any of them shows.
type Result struct {
	Scenario      string  `json:"scenario"`
	System        string  `json:"system"`
	MsgsPerS      float64 `json:"msgs_per_s,omitempty"`
	AloneMsgsPerS float64 `json:"alone_msgs_per_s,omitempty"`
	Ratio         float64 `json:"ratio,omitempty"`
	MBPerS        float64 `json:"mb_per_s,omitempty"`
	P50us         float64 `json:"p50_us,omitempty"`
	P99us         float64 `json:"p99_us,omitempty"`
	P999us        float64 `json:"p999_us,omitempty"`
	Ms            float64 `json:"ms,omitempty"`
	RSSKiBPerConn float64 `json:"rss_kib_per_conn,omitempty"`
	BrokerPeakKiB float64 `json:"broker_peak_kib,omitempty"`
	Lost          int     `json:"lost,omitempty"`
	Reps          int     `json:"reps"`
	Min           float64 `json:"min,omitempty"` // of the headline metric
	Max           float64 `json:"max,omitempty"`
	Skipped       string  `json:"skipped,omitempty"`
}

// kind says how a scenario runs and which metric is its headline.
type kind int

const (
	pubsub  kind = iota // publisher → subs subscribers: msgs/s, higher is better
	reqrep              // requests, inflight at a time: p50 µs, lower is better
	bulk                // large messages: ms per message, lower is better
	idle                // idle connections: broker KiB per connection, lower is better
	stalled             // pubsub with and without a subscriber that never reads: msgs/s with ÷ alone, higher is better
	stream              // one byte stream, count blocks of size bytes: MB/s, higher is better
	slow                // as stalled, with a subscriber that reads slowChunk every slowEvery
)

// paired reports the kinds that measure the fast subscriber twice per
// repetition, alone and beside a laggard, so that their ratio is taken
// under the same conditions rather than against another scenario's run.
func (k kind) paired() bool { return k == stalled || k == slow }

// Scenario is one measurement, run for each system that supports it.
type Scenario struct {
	Key      string
	kind     kind
	size     int
	subs     int
	fds      bool
	count    int // messages, round trips, or connections
	quick    int // the same, for -quick; 0: not run with -quick
	inflight int // requests outstanding at once (reqrep); 0 means 1
	maxReps  int // repetitions at most, whatever Options.Reps says; 0: no bound
	systems  []string
	note     string // why some systems are absent
	// group names the scenarios reported together as one table, a row
	// each (the payload-size sweep); -only takes it for all of them.
	group string
}

// Systems, in the order they are run in each repetition. busd-inline and
// busd-fd are busd with the client's large-payload threshold negative
// (every payload inline, as before memfd payloads) and 0 (every payload in
// a sealed memfd); busd-payloadfile publishes each payload as a sealed memfd
// of its own (Msg.PayloadFile), its subscribers taking it with PayloadFiles
// and reading it through a mapping rather than into memory of their own;
// busd-memfd attaches one memfd, unsealed and rewritten in place for every
// message, as the message's descriptor, as a program passing descriptors
// of its own would (sysbusd.go, roles.go).
var Systems = []string{"busd", "busd-inline", "busd-fd", "busd-payloadfile", "busd-memfd", "busd-topic", "direct", "relay", "nats", "dbus-daemon", "dbus-broker", "mosquitto"}

var (
	allSystems = []string{"busd", "direct", "relay", "nats", "dbus-daemon", "dbus-broker", "mosquitto"}
	brokers    = []string{"busd", "relay", "nats", "dbus-daemon", "dbus-broker", "mosquitto"}
)

// Scenarios, in the order they run.
var Scenarios = slices.Concat([]Scenario{
	{Key: "pubsub-16B", kind: pubsub, size: 16, subs: 1, count: 4_000_000, quick: 300_000, systems: allSystems},
	{Key: "pubsub-1KiB", kind: pubsub, size: 1024, subs: 1, count: 1_000_000, quick: 100_000, systems: allSystems},
	{Key: "pubsub-64KiB", kind: pubsub, size: 64 << 10, subs: 1, count: 30_000, quick: 3_000, systems: allSystems},
	{Key: "fanout4-16B", kind: pubsub, size: 16, subs: 4, count: 2_000_000, quick: 200_000, systems: allSystems},
	// A laggard costs busd's publisher a fixed amount once: two stall
	// budgets and the queue it fills, about 20 ms in all. Over 2M messages
	// (0.35 s a half) that was 7% of the ratio; over 6M, 2-3%. 4M keeps a
	// half under a second and the one-off cost near 4%. A quick run of the
	// paired scenarios is as long as a full one, so that the ratio measures
	// the steady cost.
	{Key: "stalled-sub", kind: stalled, size: 16, subs: 1, count: 4_000_000, quick: 4_000_000, systems: brokers},
	{Key: "slow-sub", kind: slow, size: 16, subs: 1, count: 4_000_000, quick: 4_000_000, systems: brokers},
	{Key: "reqrep-16B", kind: reqrep, size: 16, count: 20_000, quick: 2_000, systems: allSystems},
	// Sixteen in flight make round trips about five times as fast, so five
	// times as many keep a repetition about as long as reqrep-16B's.
	{Key: "reqrep16-16B", kind: reqrep, size: 16, inflight: 16, count: 100_000, quick: 10_000,
		systems: []string{"busd", "direct", "relay", "nats", "dbus-daemon", "dbus-broker"},
		note:    "mosquitto has no way to match replies to 16 outstanding requests (MQTT 3.1.1 has no correlation data, and its requester shares one reply topic)"},
	{Key: "fd-per-msg", kind: pubsub, size: 16, subs: 1, fds: true, count: 500_000, quick: 50_000,
		systems: []string{"busd", "direct", "relay", "dbus-daemon", "dbus-broker"}, note: "nats and mosquitto cannot carry descriptors"},
	// busd-inline is how busd carried these before memfd payloads: the
	// figure the transparent memfd path is measured against;
	// busd-payloadfile is the same memfd taken as a file and mapped by
	// the subscribers.
	{Key: "bulk-64MiB-1sub", kind: bulk, size: 64 << 20, subs: 1, count: 8, quick: 2,
		systems: []string{"busd", "busd-inline", "busd-payloadfile", "busd-memfd", "direct", "relay", "nats"}},
	{Key: "bulk-64MiB-4sub", kind: bulk, size: 64 << 20, subs: 4, count: 4, quick: 1,
		systems: []string{"busd", "busd-inline", "busd-payloadfile", "busd-memfd", "relay", "nats"}, note: "direct has one peer per socket; D-Bus and mosquitto are not run with 64 MiB messages"},
	// 1 GiB is 16 times what an inline message may be: only memfds carry
	// it. Each message is a GiB in the publisher, in the memfd, and (for
	// busd, which reads the memfd into the Msg) in each subscriber, 6 GiB
	// of new memory a message, which this VM faults in at about 12 µs a
	// page: 30 s for one message to busd's four subscribers, against 10 s
	// where they map the memfd (busd-payloadfile, busd-memfd). One message
	// and at most three repetitions keep it to minutes, and a quick run
	// leaves it out; the headline is the broker's peak resident set,
	// which must stay flat.
	{Key: "bulk-1GiB-4sub", kind: bulk, size: 1 << 30, subs: 4, count: 1, quick: 0, maxReps: 3,
		systems: []string{"busd", "busd-payloadfile", "busd-memfd"},
		note:    "an inline message carries at most 64 MiB (busd's max_payload, busd-inline) and NATS's at most 64 MB; the relay would copy the GiB for each subscriber; direct has one peer per socket"},
	// 1 GiB in 64 KiB writes: busd's direct stream and its topic stream
	// against a plain Unix socket.
	{Key: "stream", kind: stream, size: 64 << 10, count: 16_384, quick: 8_192,
		systems: []string{"busd", "busd-topic", "direct"}, note: "the other buses have no streams"},
	{Key: "idle-conn-mem", kind: idle, count: 1000, quick: 300, systems: brokers},
	// Last, so that a quick run that reaches its time budget in it has
	// still run every other scenario.
}, sweep())

// The payload-size sweep: one subscriber, the same payload size in every
// message, sizes from 16 B to 256 MiB, reported as one table (a row per
// size) so that where a memfd starts to beat inline, and whether busd's
// default threshold follows the better of the two without a cliff, shows.
var sweepSizes = []int{16, 256, 4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20}

const (
	sweepGroup = "sweep"
	// A cell sends sweepBytes, at most sweepMsgs messages, at least one:
	// 0.2-1 s at the rates busd reaches (4-6M msgs/s at 16 B, 400-1000
	// MB/s from 4 KiB up; NATS takes about twice as long), 1-2 s where
	// it moves 64 MiB inline at about 100 MB/s. Setting up and tearing
	// down a cell's three processes adds about half a second to each.
	sweepBytes      = 128 << 20
	sweepMsgs       = 1_000_000
	sweepQuickBytes = 32 << 20
	sweepQuickMsgs  = 200_000
	// sweepMaxInline is the largest payload busd carries inline (its
	// default max_payload) and the largest the NATS server the harness
	// starts takes (its own maximum).
	sweepMaxInline = 64 << 20
	// fdMsgs and fdQuickMsgs bound busd-fd's messages (countFor).
	fdMsgs      = 20_000
	fdQuickMsgs = 2_000
)

func sweep() []Scenario {
	var out []Scenario
	for _, size := range sweepSizes {
		sc := Scenario{
			Key: "sweep-" + sizeName(size), kind: pubsub, size: size, subs: 1, group: sweepGroup,
			count:   min(max(sweepBytes/size, 1), sweepMsgs),
			quick:   min(max(sweepQuickBytes/size, 1), sweepQuickMsgs),
			systems: []string{"busd", "busd-inline", "busd-fd", "nats"},
		}
		if size > sweepMaxInline {
			sc.systems = []string{"busd", "busd-fd"}
			sc.note = "over 64 MiB: busd-inline is over busd's max_payload and nats over its max_payload"
		}
		out = append(out, sc)
	}
	return out
}

// sizeName writes a power-of-two size as the scenario keys do: 16B, 4KiB,
// 256MiB.
func sizeName(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// Options control a run.
type Options struct {
	Quick bool
	Reps  int      // repetitions per system; 0 means 5, or 1 with Quick
	Only  []string // scenario keys to run; all if empty
	// Systems keeps only these system keys (all if empty): for quick A/B
	// runs of busd against one peer. Published figures use every system.
	Systems []string
	Logf    func(format string, args ...any)
	Budget  time.Duration // stop starting new scenarios after this long; 0 for none
}
