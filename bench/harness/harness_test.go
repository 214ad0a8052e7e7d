package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	RunChild() // the roles re-execute this test binary
	os.Exit(m.Run())
}

// TestEverySystemInEveryScenario runs each scenario once per system with a
// few messages, so the harness itself is tested by make test.
func TestEverySystemInEveryScenario(t *testing.T) {
	t.Setenv(stallBudgetEnv, "1s") // the roles' busd brokers lose nothing on a loaded machine
	small := map[kind]int{pubsub: 500, reqrep: 50, bulk: 1, idle: 20, stalled: 500, stream: 64, slow: 500}
	for i := range Scenarios {
		sc := Scenarios[i]
		if strings.HasPrefix(sc.Key, "bulk") {
			sc.size = 1 << 20 // the mechanics, not the memory
		}
		count := small[sc.kind]
		if sc.group == sweepGroup {
			// The sweep's cells differ only in size: one small, one over
			// the default threshold, a few messages of it.
			if sc.size != 16 && sc.size != 1<<20 {
				continue
			}
			count = min(count, 8<<20/sc.size)
		}
		for _, sys := range sc.systems {
			t.Run(sc.Key+"/"+sys, func(t *testing.T) {
				if why := available(sys); why != "" {
					t.Skip(why) // the peer is not installed (.ci/run installs them)
				}
				r, err := run(&sc, sys, count, 0)
				if err != nil {
					t.Fatal(err)
				}
				if v, _ := headline(sc.kind, &r); v <= 0 {
					t.Fatalf("headline metric %v in %+v", v, r)
				}
				if r.Lost != 0 {
					t.Errorf("lost %d of %d messages", r.Lost, count*sc.subs)
				}
				switch {
				case sc.kind == reqrep:
					checkReqRep(t, &sc, &r)
				case sc.kind.paired():
					checkPaired(t, &r)
				}
			})
		}
	}
}

// checkReqRep checks that a request/reply result's figures are positive and
// ordered, and that one with several requests in flight has a rate.
func checkReqRep(t *testing.T, sc *Scenario, r *Result) {
	t.Helper()
	if !(r.P50us > 0 && r.P50us <= r.P99us && r.P99us <= r.P999us) {
		t.Errorf("latencies out of order: p50 %v, p99 %v, p99.9 %v µs", r.P50us, r.P99us, r.P999us)
	}
	if (sc.inflight > 1) != (r.MsgsPerS > 0) {
		t.Errorf("%d in flight, %v replies/s", sc.inflight, r.MsgsPerS)
	}
}

// checkPaired checks that a stalled-sub or slow-sub result has both rates
// and their ratio.
func checkPaired(t *testing.T, r *Result) {
	t.Helper()
	if r.MsgsPerS <= 0 || r.AloneMsgsPerS <= 0 {
		t.Fatalf("rates %v with, %v alone", r.MsgsPerS, r.AloneMsgsPerS)
	}
	if want := r.MsgsPerS / r.AloneMsgsPerS; r.Ratio != want {
		t.Errorf("ratio %v; want %v", r.Ratio, want)
	}
}

// TestSweep checks the payload-size sweep's scenarios: every size once, in
// order, -only sweep selecting them all, counts that keep a cell short,
// and no system asked to carry what it cannot (over 64 MiB only busd and
// busd-fd).
func TestSweep(t *testing.T) {
	var sizes []int
	o := Options{Only: []string{sweepGroup}}
	for i := range Scenarios {
		sc := &Scenarios[i]
		if o.wants(sc) != (sc.group == sweepGroup) {
			t.Errorf("-only %s selects %s: %v", sweepGroup, sc.Key, o.wants(sc))
		}
		if sc.group != sweepGroup {
			continue
		}
		sizes = append(sizes, sc.size)
		if want := "sweep-" + sizeName(sc.size); sc.Key != want {
			t.Errorf("key %s; want %s", sc.Key, want)
		}
		if sc.kind != pubsub || sc.subs != 1 {
			t.Errorf("%s: kind %v, %d subscribers; want pubsub to 1", sc.Key, sc.kind, sc.subs)
		}
		for _, n := range []int{sc.count, sc.quick} {
			if n < 1 || n > sweepMsgs || (n > 1 && n*sc.size > sweepBytes) {
				t.Errorf("%s: %d messages of %d bytes", sc.Key, n, sc.size)
			}
		}
		if sc.quick > sc.count {
			t.Errorf("%s: quick %d > full %d", sc.Key, sc.quick, sc.count)
		}
		inlineToo := sc.size <= sweepMaxInline
		if got := slices.Contains(sc.systems, "busd-inline") || slices.Contains(sc.systems, "nats"); got != inlineToo {
			t.Errorf("%s (%d bytes): systems %q", sc.Key, sc.size, sc.systems)
		}
		if !slices.Contains(sc.systems, "busd") || !slices.Contains(sc.systems, "busd-fd") {
			t.Errorf("%s: systems %q lack busd or busd-fd", sc.Key, sc.systems)
		}
		for _, sys := range sc.systems {
			if !slices.Contains(Systems, sys) {
				t.Errorf("%s: system %s is not in Systems", sc.Key, sys)
			}
		}
	}
	if !slices.Equal(sizes, sweepSizes) || sizes[0] != 16 || sizes[len(sizes)-1] != 256<<20 {
		t.Errorf("sweep sizes %v; want %v from 16 B to 256 MiB", sizes, sweepSizes)
	}
	if n := countFor("busd-fd", pubsub, sweepMsgs, false); n != fdMsgs {
		t.Errorf("busd-fd gets %d messages of %d; want %d", n, sweepMsgs, fdMsgs)
	}
	for n, want := range map[int]string{16: "16B", 4 << 10: "4KiB", 256 << 20: "256MiB", 1 << 30: "1GiB", 1000: "1000B"} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %s; want %s", n, got, want)
		}
	}
}

// TestPairOrder checks that the paired scenarios alternate which half of a
// repetition runs first, and pick their laggard.
func TestPairOrder(t *testing.T) {
	for _, tc := range []struct {
		k    kind
		rep  int
		want []string
	}{
		{stalled, 0, []string{"", lagStalled}},
		{stalled, 1, []string{lagStalled, ""}},
		{stalled, 2, []string{"", lagStalled}},
		{slow, 0, []string{"", lagSlow}},
		{slow, 3, []string{lagSlow, ""}},
	} {
		if got := pairOrder(tc.k, tc.rep); !slices.Equal(got, tc.want) {
			t.Errorf("pairOrder(%v, %d) = %q; want %q", tc.k, tc.rep, got, tc.want)
		}
	}
}

// TestEndMarkerEndsAShortRun has a publisher send fewer messages than its
// subscriber waits for, as a broker that dropped some would leave it, and
// checks that the subscriber stops at the end marker and says how many it
// got, including where messages are memfds or carry descriptors.
func TestEndMarkerEndsAShortRun(t *testing.T) {
	const sent, want = 60, 100
	for _, tc := range []struct {
		sys  string
		size int
		fds  bool
	}{
		{"busd", 16, false}, {"busd-fd", 16, false}, {"busd-memfd", 4096, false}, {"direct", 16, true}, {"relay", 16, false},
		{"nats", 16, false}, {"dbus-daemon", 16, false}, {"dbus-broker", 16, false}, {"mosquitto", 16, false},
	} {
		t.Run(tc.sys, func(t *testing.T) {
			if why := available(tc.sys); why != "" {
				t.Skip(why) // the peer is not installed (.ci/run installs them)
			}
			g, err := newRig(tc.sys)
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			sub, _, err := g.launch(job{Role: "sub", System: tc.sys, Addr: g.peerAddr(0), Count: want, Size: tc.size, FDs: tc.fds}, true)
			if err != nil {
				t.Fatal(err)
			}
			pub, _, err := g.launch(job{Role: "pub", System: tc.sys, Addr: g.addr, Addrs: []string{g.peerAddr(0)}, Count: sent, Size: tc.size, FDs: tc.fds}, true)
			if err != nil {
				t.Fatal(err)
			}
			pub.send("go")
			// Sooner than the subscriber's own 30 s without progress: it
			// must end at the marker, not give up.
			out, err := sub.expect("done", 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var rep report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Received != sent {
				t.Errorf("received %d; want %d", rep.Received, sent)
			}
		})
	}
}

// TestNoMessageLooksLikeTheEndMarker checks that every scenario with a
// publisher sends messages a subscriber cannot take for the end marker.
func TestNoMessageLooksLikeTheEndMarker(t *testing.T) {
	for _, sc := range Scenarios {
		if (sc.kind == pubsub || sc.kind == bulk || sc.kind.paired()) && sc.size <= 0 {
			t.Errorf("%s: %d-byte messages look like the end marker", sc.Key, sc.size)
		}
	}
	if !isEndMarker(nil, nil) || isEndMarker(nil, []*os.File{os.Stdin}) || isEndMarker(make([]byte, 16), nil) {
		t.Error("isEndMarker does not tell the marker from a memfd or a 16 B message")
	}
}

// TestGatedConn checks the laggards' gate: slow reads never take more than
// a chunk at once yet get everything, and a stalled read returns only when
// the connection is closed.
func TestGatedConn(t *testing.T) {
	dir, err := os.MkdirTemp("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "g.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const total = 3*slowChunk + 100
	more := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(make([]byte, total))
		<-more
		c.Write([]byte{1})     // for a stalled read to leave unread
		io.Copy(io.Discard, c) // until the test closes its end
	}()
	g, err := dialGated(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.slow()
	g.SetReadDeadline(time.Now().Add(10 * time.Second)) // the watchdog
	buf := make([]byte, 4*slowChunk)
	for got := 0; got < total; {
		n, err := g.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", got, total, err)
		}
		if n > slowChunk {
			t.Fatalf("read %d bytes at once; the gate allows %d", n, slowChunk)
		}
		got += n
	}
	g.stall()
	close(more)
	read := make(chan error, 1)
	go func() {
		n, err := g.Read(buf)
		if n > 0 {
			err = fmt.Errorf("read %d bytes", n)
		}
		read <- err
	}()
	// Time for a read that ignored the gate to take the byte; one that
	// heeds it returns nothing however long it is given.
	time.Sleep(50 * time.Millisecond)
	g.Close()
	select {
	case err := <-read:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("stalled read: %v; want it to wait for Close", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stalled read still blocked after Close")
	}
}

// TestReqRepInflight runs the scenario with 16 requests in flight at its
// -quick size on the systems built in, so the pipelining of the raw clients
// and the concurrent requests of the libraries get a real load, and checks
// the figures busbench -json prints.
func TestReqRepInflight(t *testing.T) {
	i := slices.IndexFunc(Scenarios, func(sc Scenario) bool { return sc.Key == "reqrep16-16B" })
	if i < 0 {
		t.Fatal("no scenario reqrep16-16B")
	}
	sc := &Scenarios[i]
	for _, sys := range []string{"busd", "direct", "relay", "nats"} {
		t.Run(sys, func(t *testing.T) {
			r, err := run(sc, sys, sc.quick, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkReqRep(t, sc, &r)
			var js bytes.Buffer
			WriteJSON(&js, []Result{r})
			for _, key := range []string{`"scenario":"reqrep16-16B"`, `"system":"` + sys + `"`, `"msgs_per_s":`, `"p50_us":`, `"p99_us":`, `"p999_us":`} {
				if !strings.Contains(js.String(), key) {
					t.Errorf("JSON lacks %s: %s", key, js.String())
				}
			}
		})
	}
}

func TestReports(t *testing.T) {
	rs := []Result{
		{Scenario: "pubsub-16B", System: "busd", MsgsPerS: 3e6, Reps: 1},
		{Scenario: "pubsub-16B", System: "nats", MsgsPerS: 1e6, Reps: 1},
		{Scenario: "reqrep-16B", System: "busd", P50us: 50, Reps: 1},
		{Scenario: "reqrep-16B", System: "nats", P50us: 100, Reps: 1},
		{Scenario: "reqrep16-16B", System: "busd", P50us: 200, P99us: 400, P999us: 800, MsgsPerS: 80e3, Reps: 1},
		{Scenario: "stream", System: "busd", MBPerS: 900, Ms: 1200, Reps: 1},
		{Scenario: "stream", System: "direct", MBPerS: 1000, Ms: 1080, Reps: 1},
		{Scenario: "idle-conn-mem", System: "busd", Skipped: "not yet"},
		{Scenario: "stalled-sub", System: "busd", MsgsPerS: 200e3, AloneMsgsPerS: 1e6, Ratio: 0.2, MBPerS: 3.2, Lost: 7, Reps: 1},
		{Scenario: "stalled-sub", System: "nats", MsgsPerS: 900e3, AloneMsgsPerS: 1e6, Ratio: 0.9, MBPerS: 14.4, Reps: 1},
		{Scenario: "sweep-16B", System: "busd", MsgsPerS: 6e6, MBPerS: 96, Reps: 1},
		{Scenario: "sweep-16B", System: "busd-inline", MsgsPerS: 6e6, MBPerS: 96, Reps: 1},
		{Scenario: "sweep-16B", System: "busd-fd", MsgsPerS: 50e3, MBPerS: 0.8, Reps: 1},
		{Scenario: "sweep-16B", System: "nats", Skipped: "failed: no"},
		{Scenario: "sweep-256MiB", System: "busd", MsgsPerS: 4, MBPerS: 1073.7, Lost: 1, Reps: 1},
		{Scenario: "sweep-256MiB", System: "busd-fd", MsgsPerS: 4, MBPerS: 1073.7, Reps: 1},
	}
	if a := Advantage(&rs[0], &rs[1]); a != 3 {
		t.Errorf("throughput advantage %v; want 3", a)
	}
	if a := Advantage(&rs[2], &rs[3]); a != 2 {
		t.Errorf("latency advantage %v; want 2", a)
	}
	var tables, js, svg bytes.Buffer
	WriteTables(&tables, rs)
	WriteJSON(&js, rs)
	WriteSVG(&svg, rs)
	for _, want := range []string{"### pubsub-16B", "| nats | 1.00M |", "3.00×", "| nats | 100 |", "2.00×", "skipped: not yet", "p99.9 800 µs, 80k replies/s",
		"| direct | 1000 | 0 | 0 | 1080 ms | 0.90× |",
		"| system | msgs/s with ÷ alone |", "| busd | 0.2 | 0 | 0 | **lost 7 messages**; 200k msgs/s with, 1.00M alone; 3.2 MB/s | — |",
		"| nats | 0.9 | 0 | 0 | 900k msgs/s with, 1.00M alone; 14.4 MB/s | 0.22× |",
		"### sweep\n", "| size | busd | busd-inline | busd-fd | nats | busd ÷ better of inline, fd |",
		"| 16B | 96 MB/s (6.00M/s) | 96 MB/s (6.00M/s) | 0.8 MB/s (50k/s) | skipped: failed: no | 1.00 |\n",
		"| 256MiB | 1074 MB/s (4/s) **lost 1** | — | 1074 MB/s (4/s) | — | 1.00 |\n",
		"sweep-256MiB: over 64 MiB"} {
		if !strings.Contains(tables.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, tables.String())
		}
	}
	if !strings.Contains(js.String(), `"scenario":"pubsub-16B","system":"busd","msgs_per_s":3000000`) {
		t.Errorf("JSON:\n%s", js.String())
	}
	for _, want := range []string{
		`"scenario":"stalled-sub","system":"busd","msgs_per_s":200000,"alone_msgs_per_s":1000000,"ratio":0.2,"mb_per_s":3.2,"lost":7,`,
		`"scenario":"stalled-sub","system":"nats","msgs_per_s":900000,"alone_msgs_per_s":1000000,"ratio":0.9,"mb_per_s":14.4,"reps":1}`,
	} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js.String())
		}
	}
	if !strings.Contains(svg.String(), "<svg") || strings.Count(svg.String(), "<rect") != 4 {
		t.Errorf("SVG has %d bars; want 4", strings.Count(svg.String(), "<rect"))
	}
	if !strings.Contains(svg.String(), ">stalled-sub ratio vs nats<") {
		t.Errorf("SVG lacks the stalled-sub bar:\n%s", svg.String())
	}
}

// TestMedianOfPairs checks that a paired scenario's median is the
// repetition with the median ratio, whole, and that a loss in any
// repetition shows in it.
func TestMedianOfPairs(t *testing.T) {
	rs := []Result{
		{MsgsPerS: 500, AloneMsgsPerS: 1000, Ratio: 0.5},
		{MsgsPerS: 100, AloneMsgsPerS: 500, Ratio: 0.2, Lost: 3},
		{MsgsPerS: 2700, AloneMsgsPerS: 3000, Ratio: 0.9},
	}
	m := median(slow, rs)
	if m.Ratio != 0.5 || m.MsgsPerS != 500 || m.AloneMsgsPerS != 1000 {
		t.Errorf("median %+v; want the repetition with ratio 0.5", m)
	}
	if m.Min != 0.2 || m.Max != 0.9 || m.Reps != 3 || m.Lost != 3 {
		t.Errorf("min %v, max %v, reps %d, lost %d; want 0.2, 0.9, 3, 3", m.Min, m.Max, m.Reps, m.Lost)
	}
}

// BenchmarkIPC measures the pub/sub scenarios through busd and over a
// direct socket with go test -bench, each role its own process; busbench
// runs the full comparison.
func BenchmarkIPC(b *testing.B) {
	for i := range Scenarios[:4] {
		sc := Scenarios[i]
		for _, sys := range []string{"busd", "direct"} {
			b.Run(sc.Key+"/"+sys, func(b *testing.B) {
				r, err := run(&sc, sys, max(b.N, 1000), 0)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.MsgsPerS, "msgs/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// TestAvailable checks that a missing binary makes a system skipped, with a
// reason that says how to install it.
func TestAvailable(t *testing.T) {
	binaries["missing-peer"] = []string{"busbench-no-such-binary"}
	defer delete(binaries, "missing-peer")
	if why := available("missing-peer"); !strings.Contains(why, "not installed (make bench-deps)") {
		t.Errorf("available = %q", why)
	}
	if why := available("busd"); why != "" {
		t.Errorf("busd unavailable: %q", why)
	}
}
