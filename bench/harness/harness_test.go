package harness

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	RunChild() // the roles re-execute this test binary
	os.Exit(m.Run())
}

// TestEverySystemInEveryScenario runs each scenario once per system with a
// few messages, so the harness itself is tested by make test.
func TestEverySystemInEveryScenario(t *testing.T) {
	small := map[kind]int{pubsub: 500, reqrep: 50, bulk: 1, idle: 20, stalled: 500, stream: 64}
	for i := range Scenarios {
		sc := Scenarios[i]
		if strings.HasPrefix(sc.Key, "bulk") {
			sc.size = 1 << 20 // the mechanics, not the memory
		}
		for _, sys := range sc.systems {
			t.Run(sc.Key+"/"+sys, func(t *testing.T) {
				if why := available(sys); why != "" {
					t.Skip(why) // the one legitimate skip: the peer is not installed
				}
				r, err := run(&sc, sys, small[sc.kind])
				if err != nil {
					t.Fatal(err)
				}
				if v, _ := headline(sc.kind, &r); v <= 0 {
					t.Fatalf("headline metric %v in %+v", v, r)
				}
				if sc.kind == reqrep {
					checkReqRep(t, &sc, &r)
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
			r, err := run(sc, sys, sc.quick)
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
		"| direct | 1000 | 0 | 0 | 1080 ms | 0.90× |"} {
		if !strings.Contains(tables.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, tables.String())
		}
	}
	if !strings.Contains(js.String(), `"scenario":"pubsub-16B","system":"busd","msgs_per_s":3000000`) {
		t.Errorf("JSON:\n%s", js.String())
	}
	if !strings.Contains(svg.String(), "<svg") || strings.Count(svg.String(), "<rect") != 3 {
		t.Errorf("SVG has %d bars; want 3", strings.Count(svg.String(), "<rect"))
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
				r, err := run(&sc, sys, max(b.N, 1000))
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
