package harness

import (
	"fmt"
	"slices"
	"time"
)

// headline returns a result's main metric and whether higher is better.
func headline(k kind, r *Result) (float64, bool) {
	switch k {
	case reqrep:
		return r.P50us, false
	case bulk:
		return r.Ms, false
	case idle:
		return r.RSSKiBPerConn, false
	case stream:
		return r.MBPerS, true
	case stalled, slow:
		return r.Ratio, true
	}
	return r.MsgsPerS, true
}

// minPairedReps is the fewest repetitions of a paired scenario.
const minPairedReps = 5

// Run measures the scenarios, repetition by repetition with the systems
// interleaved inside each, and returns one Result per scenario and system:
// the median repetition by the headline metric, with the min and max.
func Run(o Options) []Result {
	reps := o.Reps
	if reps == 0 {
		reps = 5
		if o.Quick {
			reps = 1
		}
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	began := time.Now()
	var out []Result
	for i := range Scenarios {
		sc := &Scenarios[i]
		if !o.wants(sc) {
			continue
		}
		if len(sc.systems) == 0 {
			out = append(out, Result{Scenario: sc.Key, System: "busd", Skipped: sc.note})
			logf("%s: skipped: %s", sc.Key, sc.note)
			continue
		}
		if o.Budget > 0 && time.Since(began) > o.Budget {
			// A line of its own, so that a reader looking for the
			// scenario learns why it is not there.
			out = append(out, Result{Scenario: sc.Key, System: "busd", Skipped: "over the time budget"})
			logf("%s: skipped: over the time budget", sc.Key)
			continue
		}
		count := sc.count
		if o.Quick {
			count = sc.quick
		}
		if count == 0 {
			out = append(out, Result{Scenario: sc.Key, System: "busd", Skipped: "not run with -quick"})
			logf("%s: skipped: not run with -quick", sc.Key)
			continue
		}
		runs := map[string][]Result{}
		failed := map[string]string{}
		skipped := map[string]string{}
		systems := sc.systems
		if len(o.Systems) > 0 {
			systems = slices.DeleteFunc(slices.Clone(systems), func(s string) bool { return !slices.Contains(o.Systems, s) })
		}
		for _, sys := range systems {
			if why := available(sys); why != "" {
				skipped[sys] = why
				logf("%s/%s: skipped: %s", sc.Key, sys, why)
			}
		}
		scReps := reps
		if sc.kind.paired() {
			// A ratio of two short runs on a shared machine swings by a
			// tenth either way (busd's stalled-sub: 0.87 to 1.07 in one
			// quick run, whose median of three was 0.885 where seven
			// repetitions gave 0.976): even a quick run takes the median
			// of five.
			scReps = max(reps, minPairedReps)
		}
		if sc.maxReps > 0 {
			scReps = min(scReps, sc.maxReps)
		}
		for rep := range scReps {
			for _, sys := range systems {
				if failed[sys] != "" || skipped[sys] != "" {
					continue
				}
				r, err := run(sc, sys, countFor(sys, sc.kind, count, o.Quick), rep)
				if err != nil {
					failed[sys] = err.Error()
					logf("%s/%s: %v", sc.Key, sys, err)
					continue
				}
				v, _ := headline(sc.kind, &r)
				logf("%s/%s rep %d: %.4g%s", sc.Key, sys, rep+1, v, logExtra(&r))
				runs[sys] = append(runs[sys], r)
			}
		}
		for _, sys := range systems {
			if skipped[sys] != "" {
				out = append(out, Result{Scenario: sc.Key, System: sys, Skipped: skipped[sys]})
				continue
			}
			if failed[sys] != "" {
				out = append(out, Result{Scenario: sc.Key, System: sys, Skipped: "failed: " + failed[sys]})
				continue
			}
			out = append(out, median(sc.kind, runs[sys]))
		}
	}
	return out
}

// wants reports whether the options select sc: all scenarios without
// Only, else those it names by key or by group.
func (o *Options) wants(sc *Scenario) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, sc.Key) || (sc.group != "" && slices.Contains(o.Only, sc.group))
}

// logExtra is what a repetition's log line adds to the headline: the two
// rates behind a ratio, and any loss, which the median would otherwise
// report only as a sum.
func logExtra(r *Result) string {
	var s string
	if r.Ratio > 0 {
		s = fmt.Sprintf(" (%.4g msgs/s with, %.4g alone)", r.MsgsPerS, r.AloneMsgsPerS)
	}
	if r.Lost > 0 {
		s += fmt.Sprintf(", lost %d", r.Lost)
	}
	return s
}

// median picks the median repetition by the headline metric; Lost is the
// sum over all of them.
func median(k kind, rs []Result) Result {
	slices.SortFunc(rs, func(a, b Result) int {
		va, _ := headline(k, &a)
		vb, _ := headline(k, &b)
		switch {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	m := rs[len(rs)/2]
	m.Reps = len(rs)
	m.Min, _ = headline(k, &rs[0])
	m.Max, _ = headline(k, &rs[len(rs)-1])
	m.Lost = 0
	for _, r := range rs {
		m.Lost += r.Lost
	}
	return m
}

// KindOf returns the kind of a scenario key, for reports.
func kindOf(key string) kind {
	for _, sc := range Scenarios {
		if sc.Key == key {
			return sc.kind
		}
	}
	return pubsub
}
