package harness

import (
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
	}
	return r.MsgsPerS, true
}

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
		if len(o.Only) > 0 && !slices.Contains(o.Only, sc.Key) {
			continue
		}
		if len(sc.systems) == 0 {
			out = append(out, Result{Scenario: sc.Key, System: "busd", Skipped: sc.note})
			logf("%s: skipped: %s", sc.Key, sc.note)
			continue
		}
		if o.Budget > 0 && time.Since(began) > o.Budget {
			logf("%s: skipped: over the time budget", sc.Key)
			continue
		}
		count := sc.count
		if o.Quick {
			count = sc.quick
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
		for rep := range reps {
			for _, sys := range systems {
				if failed[sys] != "" || skipped[sys] != "" {
					continue
				}
				r, err := run(sc, sys, countFor(sys, sc.kind, count))
				if err != nil {
					failed[sys] = err.Error()
					logf("%s/%s: %v", sc.Key, sys, err)
					continue
				}
				v, _ := headline(sc.kind, &r)
				logf("%s/%s rep %d: %.4g", sc.Key, sys, rep+1, v)
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

// median picks the median repetition by the headline metric.
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
