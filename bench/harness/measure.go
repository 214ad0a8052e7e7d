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

// run is one measurement of one scenario on one system.
func run(sc *Scenario, sys string, count int) (Result, error) {
	dir, err := os.MkdirTemp("", "bb")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	r := Result{Scenario: sc.Key, System: sys}
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	launch := func(j job, wantReady bool) (*proc, string, error) {
		p, err := start(j)
		if err != nil {
			return nil, "", err
		}
		procs = append(procs, p)
		if !wantReady {
			return p, "", nil
		}
		rest, err := p.expect("ready", time.Minute)
		return p, rest, err
	}

	addr := filepath.Join(dir, "s", "bus.sock")
	var broker *proc
	if sys != "direct" {
		var rest string
		if broker, rest, err = launch(job{Role: "broker", System: sys, Addr: addr}, true); err != nil {
			return r, err
		}
		addr = rest
	}
	peerAddr := func(i int) string {
		if sys == "direct" {
			return filepath.Join(dir, "s", "d"+strconv.Itoa(i)+".sock")
		}
		return addr
	}
	switch sc.kind {
	case idle:
		before, err := broker.rssKiB()
		if err != nil {
			return r, err
		}
		if _, _, err := launch(job{Role: "idle", System: sys, Addr: addr, Count: count}, true); err != nil {
			return r, err
		}
		time.Sleep(300 * time.Millisecond) // let the broker settle
		after, err := broker.rssKiB()
		if err != nil {
			return r, err
		}
		r.RSSKiBPerConn = float64(after-before) / float64(count)
		return r, nil
	case reqrep:
		if _, _, err := launch(job{Role: "rep", System: sys, Addr: peerAddr(0)}, true); err != nil {
			return r, err
		}
		req, _, err := launch(job{Role: "req", System: sys, Addr: addr, Addrs: []string{peerAddr(0)}, Count: count, Size: sc.size, Inflight: sc.inflight}, true)
		if err != nil {
			return r, err
		}
		req.send("go")
		out, err := req.expect("done", 5*time.Minute)
		if err != nil {
			return r, err
		}
		var rep report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return r, err
		}
		slices.Sort(rep.Latencies)
		r.P50us, r.P99us, r.P999us = quantile(rep.Latencies, .5), quantile(rep.Latencies, .99), quantile(rep.Latencies, .999)
		if sc.inflight > 1 && rep.Seconds > 0 {
			// With one in flight the rate is just the inverse of the mean
			// latency, so reqrep-16B keeps to latencies.
			r.MsgsPerS = float64(count) / rep.Seconds
		}
		return r, nil
	case stream:
		sink, _, err := launch(job{Role: "listen", System: sys, Addr: peerAddr(0), Count: count, Size: sc.size}, true)
		if err != nil {
			return r, err
		}
		src, _, err := launch(job{Role: "dial", System: sys, Addr: addr, Addrs: []string{peerAddr(0)}, Count: count, Size: sc.size}, true)
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		src.send("go")
		if _, err := sink.expect("done", 10*time.Minute); err != nil {
			return r, err
		}
		el := time.Since(t0)
		r.MBPerS = float64(count) * float64(sc.size) / 1e6 / el.Seconds()
		r.Ms = float64(el.Microseconds()) / 1e3
		return r, nil
	}

	// pubsub, bulk, stalled
	if sc.kind == stalled {
		if _, _, err := launch(job{Role: "sub", System: sys, Addr: addr, Stalled: true}, true); err != nil {
			return r, err
		}
	}
	var subs []*proc
	var addrs []string
	for i := range sc.subs {
		p, _, err := launch(job{Role: "sub", System: sys, Addr: peerAddr(i), Count: count, Size: sc.size, FDs: sc.fds}, true)
		if err != nil {
			return r, err
		}
		subs = append(subs, p)
		addrs = append(addrs, peerAddr(i))
	}
	pub, _, err := launch(job{Role: "pub", System: sys, Addr: addr, Addrs: addrs, Count: count, Size: sc.size, FDs: sc.fds}, true)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	pub.send("go")
	for _, s := range subs {
		if _, err := s.expect("done", 10*time.Minute); err != nil {
			return r, err
		}
	}
	el := time.Since(t0)
	delivered := float64(count * sc.subs)
	r.MsgsPerS = delivered / el.Seconds()
	r.MBPerS = r.MsgsPerS * float64(sc.size) / 1e6
	r.Ms = float64(el.Microseconds()) / 1e3 / float64(count)
	if broker != nil && sc.kind == bulk {
		r.BrokerPeakKiB = float64(peakKiB(broker))
	}
	return r, nil
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
