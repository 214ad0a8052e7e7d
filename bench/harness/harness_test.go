package harness

import (
	"bytes"
	"os"
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
	small := map[kind]int{pubsub: 500, reqrep: 50, bulk: 1, idle: 20, stalled: 500}
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
			})
		}
	}
}

func TestReports(t *testing.T) {
	rs := []Result{
		{Scenario: "pubsub-16B", System: "busd", MsgsPerS: 3e6, Reps: 1},
		{Scenario: "pubsub-16B", System: "nats", MsgsPerS: 1e6, Reps: 1},
		{Scenario: "reqrep-16B", System: "busd", P50us: 50, Reps: 1},
		{Scenario: "reqrep-16B", System: "nats", P50us: 100, Reps: 1},
		{Scenario: "stream", System: "busd", Skipped: "not yet"},
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
	for _, want := range []string{"### pubsub-16B", "| nats | 1.00M |", "3.00×", "| nats | 100 |", "2.00×", "skipped: not yet"} {
		if !strings.Contains(tables.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, tables.String())
		}
	}
	if !strings.Contains(js.String(), `"scenario":"pubsub-16B","system":"busd","msgs_per_s":3000000`) {
		t.Errorf("JSON:\n%s", js.String())
	}
	if !strings.Contains(svg.String(), "<svg") || strings.Count(svg.String(), "<rect") != 2 {
		t.Errorf("SVG has %d bars; want 2", strings.Count(svg.String(), "<rect"))
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
