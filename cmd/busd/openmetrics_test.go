package main

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/busd/busd/bus"
)

// exposition is a parsed OpenMetrics text: the families' metadata and
// every sample, keyed by its series (name and labels as written).
type exposition struct {
	types   map[string]string // family name → type
	helps   map[string]string
	units   map[string]string
	samples map[string]float64
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	// a sample: name, optional labels (quoted values with escapes), value
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)$`)
)

// parseOpenMetrics checks text against the parts of OpenMetrics 1.0 busd
// uses (no exemplars, no timestamps, no histograms) and returns it
// parsed. It requires what the endpoint promises: every family with TYPE
// and HELP before its samples, families not interleaved, a UNIT that is
// the name's suffix, counters sampled as _total and not negative, numbers
// for values, no series twice, and # EOF ending the text.
func parseOpenMetrics(text string) (*exposition, error) {
	e := &exposition{types: map[string]string{}, helps: map[string]string{}, units: map[string]string{}, samples: map[string]float64{}}
	body, ok := strings.CutSuffix(text, "# EOF\n")
	if !ok || strings.Contains(body, "# EOF") {
		return nil, fmt.Errorf("the text does not end with one # EOF line")
	}
	var current string           // the family whose lines these are
	done := map[string]bool{}    // families whose lines have ended
	sampled := map[string]bool{} // families with a sample already
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		fam, err := e.parseLine(line, sampled)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
		if fam != current {
			if done[fam] {
				return nil, fmt.Errorf("line %d %q: family %s is interleaved with another", i+1, line, fam)
			}
			done[current], current = true, fam
		}
	}
	for fam := range e.types {
		switch {
		case e.helps[fam] == "":
			return nil, fmt.Errorf("family %s has no HELP", fam)
		case !sampled[fam]:
			return nil, fmt.Errorf("family %s has no sample", fam)
		case e.units[fam] != "" && !strings.HasSuffix(fam, "_"+e.units[fam]):
			return nil, fmt.Errorf("family %s has unit %s but not as its suffix", fam, e.units[fam])
		}
	}
	return e, nil
}

// parseLine reads one line and returns the family it belongs to.
func (e *exposition) parseLine(line string, sampled map[string]bool) (string, error) {
	if rest, ok := strings.CutPrefix(line, "# "); ok {
		kind, rest, _ := strings.Cut(rest, " ")
		name, arg, _ := strings.Cut(rest, " ")
		meta := map[string]map[string]string{"TYPE": e.types, "HELP": e.helps, "UNIT": e.units}[kind]
		switch {
		case meta == nil:
			return "", fmt.Errorf("unknown metadata %q", kind)
		case !metricName.MatchString(name):
			return "", fmt.Errorf("bad family name %q", name)
		case sampled[name]:
			return "", fmt.Errorf("%s of %s after its samples", kind, name)
		}
		if _, dup := meta[name]; dup {
			return "", fmt.Errorf("second %s of %s", kind, name)
		}
		meta[name] = arg
		return name, nil
	}
	m := sampleLine.FindStringSubmatch(line)
	if m == nil {
		return "", fmt.Errorf("not a sample")
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		return "", fmt.Errorf("value %q is not a number", m[3])
	}
	series := m[1] + m[2]
	if _, dup := e.samples[series]; dup {
		return "", fmt.Errorf("series %s twice", series)
	}
	e.samples[series] = v
	fam := e.familyOf(m[1])
	if fam == "" {
		return "", fmt.Errorf("sample %s belongs to no family with a TYPE, or has the wrong suffix for its type", m[1])
	}
	if e.types[fam] == "counter" && v < 0 {
		return "", fmt.Errorf("counter %s is negative", m[1])
	}
	sampled[fam] = true
	return fam, nil
}

// familyOf returns the family a sample name belongs to by its type's
// suffix, or "".
func (e *exposition) familyOf(sample string) string {
	suffixes := map[string]string{"counter": "_total", "info": "_info", "gauge": ""}
	for fam, typ := range e.types {
		if sample == fam+suffixes[typ] {
			return fam
		}
	}
	return ""
}

// Every field of bus.Stats is exposed, by a family with a sane name: a
// field added to Stats without a metric fails here.
func TestMetricsCoverStats(t *testing.T) {
	byStat := map[string]string{}
	for _, f := range statFamilies {
		if prev, dup := byStat[f.stat]; dup {
			t.Errorf("bus.Stats.%s is exposed twice: %s and %s", f.stat, prev, f.name)
		}
		byStat[f.stat] = f.name
		if f.typ == "counter" && strings.HasSuffix(f.name, "_total") {
			t.Errorf("counter family %s: the family's name takes no _total; its sample does", f.name)
		}
	}
	st := reflect.TypeFor[bus.Stats]()
	for i := range st.NumField() {
		name := st.Field(i).Name
		if _, ok := byStat[name]; !ok {
			t.Errorf("bus.Stats.%s has no metric family in statFamilies", name)
		}
		delete(byStat, name)
	}
	for stat, fam := range byStat {
		t.Errorf("%s reports bus.Stats.%s, which does not exist", fam, stat)
	}
}

// The writer's output parses, with every family and each value where it
// belongs.
func TestWriteOpenMetrics(t *testing.T) {
	st := bus.Stats{Conns: 3, Published: 1 << 40, Memory: 4096, PermitsForgotten: 7}
	cfg := bus.DefaultConfig()
	fixed := fixedFamilies(cfg, 1700000000.25)
	var b bytes.Buffer
	writeOpenMetrics(&b, &st, fixed)
	e, err := parseOpenMetrics(b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if n := len(statFamilies) + len(fixed); len(e.types) != n {
		t.Errorf("%d families; want %d", len(e.types), n)
	}
	for series, want := range map[string]float64{
		"busd_connections":                   3,
		"busd_messages_published_total":      1 << 40,
		"busd_memory_held_bytes":             4096,
		"busd_reply_permits_forgotten_total": 7,
		"busd_messages_dropped_total":        0,
		"busd_connections_limit":             float64(cfg.MaxConns),
		"busd_start_time_seconds":            1700000000.25,
		`busd_build_info` + buildLabels():    1,
	} {
		if got, ok := e.samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v); want %v", series, got, ok, want)
		}
	}
	if got, want := escapeLabel("a \"b\" c\\d\ne"), `a \"b\" c\\d\ne`; got != want {
		t.Errorf("escapeLabel: %s; want %s", got, want)
	}
	if e.units["busd_memory_held_bytes"] != "bytes" || e.types["busd_build"] != "info" {
		t.Errorf("units %v, types %v", e.units, e.types)
	}
}

// The parser refuses what the endpoint must never send, so that the
// end-to-end tests' parsing means something.
func TestParseOpenMetricsRefuses(t *testing.T) {
	const ok = "# TYPE a counter\n# HELP a A.\na_total 1\n"
	if _, err := parseOpenMetrics(ok + "# EOF\n"); err != nil {
		t.Fatalf("a valid text refused: %v", err)
	}
	for _, bad := range []string{
		ok,                                     // no EOF
		ok + "# EOF\n\n",                       // something after it
		"# TYPE a counter\na_total 1\n# EOF\n", // no HELP
		"# TYPE a counter\n# HELP a A.\na 1\n# EOF\n",                       // a counter without _total
		"# TYPE a gauge\n# HELP a A.\na x\n# EOF\n",                         // not a number
		ok + "a_total 2\n# EOF\n",                                           // a series twice
		"# TYPE a_b gauge\n# UNIT a_b bytes\n# HELP a_b A.\na_b 1\n# EOF\n", // unit not the suffix
		ok + "# TYPE b gauge\n# HELP b B.\nb 1\n# HELP a again\n# EOF\n",    // interleaved
		"b 1\n# EOF\n", // no family
	} {
		if _, err := parseOpenMetrics(bad); err == nil {
			t.Errorf("parsed %q; want an error", bad)
		}
	}
}

// -metrics takes a socket path or a loopback address and port, nothing
// that would let other machines read the bus's numbers.
func TestParseMetricsAddr(t *testing.T) {
	for _, tc := range []struct {
		in, network, refusal string
	}{
		{"127.0.0.1:0", "tcp", ""},
		{"127.3.4.5:9180", "tcp", ""},
		{"[::1]:9180", "tcp", ""},
		{"./metrics.sock", "unix", ""},
		{"/run/user/1000/busd/metrics.sock", "unix", ""},
		{"0.0.0.0:9180", "", "not a loopback address"},
		{"192.0.2.1:9180", "", "not a loopback address"},
		{"[::]:9180", "", "not a loopback address"},
		{":9180", "", "names no host"},
		{"localhost:9180", "", "not a host name"},
		{"127.0.0.1:99999", "", "port is not a number"},
		{"[::1]:x", "", "port is not a number"},
		{"metrics.sock", "", "neither a socket path"},
	} {
		a, err := parseMetricsAddr(tc.in)
		switch {
		case tc.refusal == "" && (err != nil || a.network != tc.network || a.addr != tc.in):
			t.Errorf("parseMetricsAddr(%q) = %v, %v; want %s %s", tc.in, a, err, tc.network, tc.in)
		case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)):
			t.Errorf("parseMetricsAddr(%q) = %v, %v; want an error saying %q", tc.in, a, err, tc.refusal)
		}
	}
}
