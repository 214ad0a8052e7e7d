package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// run is one repetition of one scenario on one system. rep decides which
// of a paired scenario's two measurements goes first.
func run(sc *Scenario, sys string, count, rep int) (Result, error) {
	if sc.kind.paired() {
		return runPair(sc, sys, count, rep)
	}
	return runOnce(sc, sys, count, "")
}

// runPair measures a stalled or slow scenario's fast subscriber alone and
// beside the laggard. Each half gets a broker of its own, set up the same
// way, so that the half that comes second inherits neither the other's
// backlog nor its teardown; alone goes first in even repetitions and second
// in odd ones, so that the machine's drift favours neither.
func runPair(sc *Scenario, sys string, count, rep int) (Result, error) {
	var with, alone Result
	for _, l := range pairOrder(sc.kind, rep) {
		r, err := runOnce(sc, sys, count, l)
		if err != nil {
			return r, err
		}
		if l == "" {
			alone = r
		} else {
			with = r
		}
	}
	with.AloneMsgsPerS = alone.MsgsPerS
	if alone.MsgsPerS > 0 {
		with.Ratio = with.MsgsPerS / alone.MsgsPerS
	}
	with.Lost += alone.Lost
	return with, nil
}

// pairOrder lists the laggards of a paired scenario's repetition rep in
// the order they run, "" for none.
func pairOrder(k kind, rep int) []string {
	lag := lagStalled
	if k == slow {
		lag = lagSlow
	}
	if rep%2 == 1 {
		return []string{lag, ""}
	}
	return []string{"", lag}
}

// runOnce measures one scenario on one system once, with a laggard
// subscriber of kind lag connected first if lag is not "".
func runOnce(sc *Scenario, sys string, count int, lag string) (Result, error) {
	r := Result{Scenario: sc.Key, System: sys}
	g, err := newRig(sys)
	if err != nil {
		return r, err
	}
	defer g.close()
	switch sc.kind {
	case idle:
		err = measureIdle(g, count, &r)
	case reqrep:
		err = measureReqRep(g, sc, count, &r)
	case stream:
		err = measureStream(g, sc, count, &r)
	default:
		err = measurePubSub(g, sc, count, lag, &r)
	}
	return r, err
}

// rig is one measurement's processes, stopped last started first when it
// ends, and where they meet.
type rig struct {
	sys    string
	dir    string
	addr   string // the broker's, as it said when ready; for direct, unused
	broker *proc  // nil for direct
	procs  []*proc
}

// newRig starts the system's broker, if it has one, in a new directory.
func newRig(sys string) (*rig, error) {
	dir, err := os.MkdirTemp("", "bb")
	if err != nil {
		return nil, err
	}
	g := &rig{sys: sys, dir: dir, addr: filepath.Join(dir, "s", "bus.sock")}
	if sys != "direct" {
		if g.broker, g.addr, err = g.launch(job{Role: "broker", System: sys, Addr: g.addr}, true); err != nil {
			g.close()
			return nil, err
		}
	}
	return g, nil
}

// launch starts a child and, with wantReady, waits for its "ready" and
// returns what followed it.
func (g *rig) launch(j job, wantReady bool) (*proc, string, error) {
	p, err := start(j)
	if err != nil {
		return nil, "", err
	}
	g.procs = append(g.procs, p)
	if !wantReady {
		return p, "", nil
	}
	rest, err := p.expect("ready", time.Minute)
	return p, rest, err
}

// peerAddr is where subscriber or responder i is reached: the broker, or
// for direct a socket of its own that it listens on.
func (g *rig) peerAddr(i int) string {
	if g.sys == "direct" {
		return filepath.Join(g.dir, "s", "d"+strconv.Itoa(i)+".sock")
	}
	return g.addr
}

func (g *rig) close() {
	for i := len(g.procs) - 1; i >= 0; i-- {
		g.procs[i].stop()
	}
	os.RemoveAll(g.dir)
}

func measureIdle(g *rig, count int, r *Result) error {
	before, err := g.broker.rssKiB()
	if err != nil {
		return err
	}
	if _, _, err := g.launch(job{Role: "idle", System: g.sys, Addr: g.addr, Count: count}, true); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let the broker settle
	after, err := g.broker.rssKiB()
	if err != nil {
		return err
	}
	r.RSSKiBPerConn = float64(after-before) / float64(count)
	return nil
}

func measureReqRep(g *rig, sc *Scenario, count int, r *Result) error {
	if _, _, err := g.launch(job{Role: "rep", System: g.sys, Addr: g.peerAddr(0)}, true); err != nil {
		return err
	}
	req, _, err := g.launch(job{Role: "req", System: g.sys, Addr: g.addr, Addrs: []string{g.peerAddr(0)}, Count: count, Size: sc.size, Inflight: sc.inflight}, true)
	if err != nil {
		return err
	}
	req.send("go")
	out, err := req.expect("done", 5*time.Minute)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return err
	}
	slices.Sort(rep.Latencies)
	r.P50us, r.P99us, r.P999us = quantile(rep.Latencies, .5), quantile(rep.Latencies, .99), quantile(rep.Latencies, .999)
	if sc.inflight > 1 && rep.Seconds > 0 {
		// With one in flight the rate is just the inverse of the mean
		// latency, so reqrep-16B keeps to latencies.
		r.MsgsPerS = float64(count) / rep.Seconds
	}
	return nil
}

func measureStream(g *rig, sc *Scenario, count int, r *Result) error {
	sink, _, err := g.launch(job{Role: "listen", System: g.sys, Addr: g.peerAddr(0), Count: count, Size: sc.size}, true)
	if err != nil {
		return err
	}
	src, _, err := g.launch(job{Role: "dial", System: g.sys, Addr: g.addr, Addrs: []string{g.peerAddr(0)}, Count: count, Size: sc.size}, true)
	if err != nil {
		return err
	}
	t0 := time.Now()
	src.send("go")
	if _, err := sink.expect("done", 10*time.Minute); err != nil {
		return err
	}
	el := time.Since(t0)
	r.MBPerS = float64(count) * float64(sc.size) / 1e6 / el.Seconds()
	r.Ms = float64(el.Microseconds()) / 1e3
	return nil
}

// measurePubSub times count messages from "go" to the last subscriber's
// "done". A subscriber is done at count messages or at the publisher's end
// marker, so one that missed messages ends the run rather than hanging it;
// the rate counts only what arrived, and the rest is Lost.
func measurePubSub(g *rig, sc *Scenario, count int, lag string, r *Result) error {
	if lag != "" {
		if _, _, err := g.launch(job{Role: "sub", System: g.sys, Addr: g.addr, Lag: lag}, true); err != nil {
			return err
		}
	}
	var subs []*proc
	var addrs []string
	for i := range sc.subs {
		p, _, err := g.launch(job{Role: "sub", System: g.sys, Addr: g.peerAddr(i), Count: count, Size: sc.size, FDs: sc.fds,
			Touch: sc.size >= 1<<20 || sc.group == sweepGroup}, true)
		if err != nil {
			return err
		}
		subs = append(subs, p)
		addrs = append(addrs, g.peerAddr(i))
	}
	pub, _, err := g.launch(job{Role: "pub", System: g.sys, Addr: g.addr, Addrs: addrs, Count: count, Size: sc.size, FDs: sc.fds}, true)
	if err != nil {
		return err
	}
	t0 := time.Now()
	pub.send("go")
	// A publisher that fails (a broker without flow control breaks its
	// connection) ends the run at once rather than leaving its
	// subscribers to wait out their no-progress timeout.
	pubErr := make(chan error, 1)
	go func() { _, err := pub.expect("done", 10*time.Minute); pubErr <- err }()
	outs := make([]string, len(subs))
	for i, s := range subs {
		got := make(chan error, 1)
		go func() {
			var err error
			outs[i], err = s.expect("done", 10*time.Minute)
			got <- err
		}()
		select {
		case err = <-got:
		case err = <-pubErr:
			if err != nil {
				return fmt.Errorf("publisher: %w", err)
			}
			pubErr = nil // it finished: wait for the subscribers alone
			err = <-got
		}
		if err != nil {
			return err
		}
	}
	el := time.Since(t0)
	received := 0
	for i, out := range outs {
		var rep report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return fmt.Errorf("%s: %q: %w", subs[i].name, out, err)
		}
		received += rep.Received
	}
	r.Lost = count*sc.subs - received
	r.MsgsPerS = float64(received) / el.Seconds()
	r.MBPerS = r.MsgsPerS * float64(sc.size) / 1e6
	r.Ms = float64(el.Microseconds()) / 1e3 / float64(count)
	if g.broker != nil && sc.kind == bulk {
		r.BrokerPeakKiB = float64(peakKiB(g.broker))
	}
	return nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// peakKiB reads a child's peak resident set (VmHWM).
func peakKiB(p *proc) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	var v int
	for _, line := range strings.Split(string(b), "\n") {
		if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &v); n == 1 {
			return v
		}
	}
	return 0
}
