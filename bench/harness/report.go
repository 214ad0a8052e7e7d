package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/busd/busd/clientlib"
)

// WriteJSON prints one JSON object per result.
func WriteJSON(w io.Writer, rs []Result) {
	enc := json.NewEncoder(w)
	for _, r := range rs {
		enc.Encode(r)
	}
}

// Advantage is busd's advantage over r on r's scenario: above 1 means busd
// did better (more messages per second, or less time or memory).
func Advantage(busd, r *Result) float64 {
	k := kindOf(r.Scenario)
	b, higher := headline(k, busd)
	o, _ := headline(k, r)
	if b == 0 || o == 0 {
		return 0
	}
	if higher {
		return b / o
	}
	return o / b
}

// WriteTables prints a Markdown table per scenario: each system's figures
// and busd's advantage over it; the scenarios of a group (the sweep) make
// one table, a row each, where the first of them is.
func WriteTables(w io.Writer, rs []Result) {
	printed := map[string]bool{}
	for _, group := range byScenario(rs) {
		if g := groupOf(group[0].Scenario); g != "" {
			if !printed[g] {
				printed[g] = true
				writeSweep(w, g, rs)
			}
			continue
		}
		busd := group[0]
		for _, r := range group {
			if r.System == "busd" {
				busd = r
			}
		}
		k := kindOf(busd.Scenario)
		fmt.Fprintf(w, "\n### %s\n\n", busd.Scenario)
		if busd.Skipped != "" && len(group) == 1 {
			fmt.Fprintf(w, "skipped: %s\n", busd.Skipped)
			continue
		}
		fmt.Fprintf(w, "| system | %s | min | max | other figures | busd advantage |\n|---|---|---|---|---|---|\n", metricName(k))
		for _, r := range group {
			if r.Skipped != "" {
				fmt.Fprintf(w, "| %s | skipped: %s | | | | |\n", r.System, r.Skipped)
				continue
			}
			v, _ := headline(k, &r)
			adv := "—"
			if r.System != "busd" && busd.Skipped == "" {
				adv = fmt.Sprintf("%.2f×", Advantage(&busd, &r))
			}
			figs := extra(k, &r)
			if r.Lost > 0 {
				figs = fmt.Sprintf("**lost %d messages**; %s", r.Lost, figs)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.System, num(v), num(r.Min), num(r.Max), figs, adv)
		}
	}
}

// writeSweep prints the results of group g's scenarios as one table: a row
// per payload size, a column per system with MB/s and msgs/s, and busd's
// rate over the better of busd-inline and busd-fd, which is 1 where the
// default threshold picks the faster way and below 1 where it does not.
func writeSweep(w io.Writer, g string, rs []Result) {
	cells := map[string]map[string]*Result{} // scenario, system
	for i := range rs {
		r := &rs[i]
		if groupOf(r.Scenario) != g {
			continue
		}
		if cells[r.Scenario] == nil {
			cells[r.Scenario] = map[string]*Result{}
		}
		cells[r.Scenario][r.System] = r
	}
	var systems []string
	for _, sys := range Systems {
		for _, row := range cells {
			if row[sys] != nil {
				systems = append(systems, sys)
				break
			}
		}
	}
	fmt.Fprintf(w, "\n### %s\n\n", g)
	fmt.Fprintf(w, "MB/s (msgs/s) by payload size, one subscriber. busd sends payloads over %s (clientlib.DefaultLargePayloadThreshold) in a sealed memfd; busd-inline never does, busd-fd always does.\n\n",
		sizeName(clientlib.DefaultLargePayloadThreshold))
	fmt.Fprintf(w, "| size |")
	for _, sys := range systems {
		fmt.Fprintf(w, " %s |", sys)
	}
	fmt.Fprintf(w, " busd ÷ better of inline, fd |\n|---|")
	for range systems {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintf(w, "---|\n")
	var notes []string
	for _, sc := range Scenarios {
		row := cells[sc.Key]
		if sc.group != g || row == nil {
			continue
		}
		if sc.note != "" {
			notes = append(notes, sc.Key+": "+sc.note)
		}
		fmt.Fprintf(w, "| %s |", sizeName(sc.size))
		for _, sys := range systems {
			r := row[sys]
			switch {
			case r == nil:
				fmt.Fprintf(w, " — |")
			case r.Skipped != "":
				fmt.Fprintf(w, " skipped: %s |", r.Skipped)
			default:
				lost := ""
				if r.Lost > 0 {
					lost = fmt.Sprintf(" **lost %d**", r.Lost)
				}
				fmt.Fprintf(w, " %s MB/s (%s/s)%s |", num(r.MBPerS), num(r.MsgsPerS), lost)
			}
		}
		best := 0.0
		for _, sys := range []string{"busd-inline", "busd-fd"} {
			if r := row[sys]; r != nil && r.Skipped == "" {
				best = math.Max(best, r.MBPerS)
			}
		}
		if b := row["busd"]; b != nil && b.Skipped == "" && best > 0 {
			fmt.Fprintf(w, " %.2f |\n", b.MBPerS/best)
		} else {
			fmt.Fprintf(w, " — |\n")
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "; "))
	}
}

// groupOf returns the group of a scenario key, "" if none.
func groupOf(key string) string {
	for _, sc := range Scenarios {
		if sc.Key == key {
			return sc.group
		}
	}
	return ""
}

func metricName(k kind) string {
	switch k {
	case reqrep:
		return "p50 µs"
	case bulk:
		return "ms per message"
	case idle:
		return "broker KiB per connection"
	case stream:
		return "MB/s"
	case stalled, slow:
		return "msgs/s with ÷ alone"
	}
	return "msgs/s"
}

func extra(k kind, r *Result) string {
	switch k {
	case reqrep:
		s := fmt.Sprintf("p99 %s µs, p99.9 %s µs", num(r.P99us), num(r.P999us))
		if r.MsgsPerS > 0 {
			s += fmt.Sprintf(", %s replies/s", num(r.MsgsPerS))
		}
		return s
	case bulk:
		return fmt.Sprintf("%s MB/s, broker peak %s MiB", num(r.MBPerS), num(r.BrokerPeakKiB/1024))
	case idle:
		return ""
	case stream:
		return fmt.Sprintf("%s ms", num(r.Ms))
	case stalled, slow:
		return fmt.Sprintf("%s msgs/s with, %s alone; %s MB/s", num(r.MsgsPerS), num(r.AloneMsgsPerS), num(r.MBPerS))
	}
	return fmt.Sprintf("%s MB/s", num(r.MBPerS))
}

// barLabel names a chart bar; a paired scenario's bar compares ratios, not
// rates, and says so.
func barLabel(r *Result) string {
	if kindOf(r.Scenario).paired() {
		return r.Scenario + " ratio vs " + r.System
	}
	return r.Scenario + " vs " + r.System
}

func byScenario(rs []Result) [][]Result {
	var out [][]Result
	for _, r := range rs {
		if len(out) == 0 || out[len(out)-1][0].Scenario != r.Scenario {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], r)
	}
	return out
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// WriteSVG draws busd's advantage over each other system per scenario as
// horizontal bars on a log scale, 1× in the middle: right of it busd is
// better.
func WriteSVG(w io.Writer, rs []Result) {
	type bar struct {
		label string
		adv   float64
	}
	var bars []bar
	for _, group := range byScenario(rs) {
		if groupOf(group[0].Scenario) != "" {
			continue // the sweep compares busd with itself: its table says it
		}
		var busd *Result
		for i := range group {
			if group[i].System == "busd" && group[i].Skipped == "" {
				busd = &group[i]
			}
		}
		if busd == nil {
			continue
		}
		for i := range group {
			if r := &group[i]; r.System != "busd" && r.Skipped == "" {
				if a := Advantage(busd, r); a > 0 {
					bars = append(bars, bar{barLabel(r), a})
				}
			}
		}
	}
	const rowH, labelW, plotW, maxLog = 18, 260, 420, 4.0 // bars span 1/16× to 16×
	h := rowH*len(bars) + 50
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", labelW+plotW+70, h)
	mid := labelW + plotW/2
	fmt.Fprintf(&b, `<text x="%d" y="14" text-anchor="middle">busd's advantage (log scale; right of 1× busd is better)</text>`+"\n", mid)
	for i, x := range []float64{1.0 / 16, 1.0 / 4, 1, 4, 16} {
		px := mid + int(math.Log2(x)/maxLog*plotW/2)
		fmt.Fprintf(&b, `<line x1="%d" y1="24" x2="%d" y2="%d" stroke="#ccc"/><text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n",
			px, px, h-20, px, h-6, []string{"1/16×", "1/4×", "1×", "4×", "16×"}[i])
	}
	for i, br := range bars {
		y := 28 + i*rowH
		l := math.Max(-maxLog, math.Min(maxLog, math.Log2(br.adv)))
		x0, x1 := mid, mid+int(l/maxLog*plotW/2)
		color := "#2a7"
		if x1 < x0 {
			x0, x1, color = x1, x0, "#c43"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-6, y+12, br.label)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x0, y+2, max(x1-x0, 1), rowH-5, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%.2f×</text>`+"\n", labelW+plotW+4, y+12, br.adv)
	}
	b.WriteString("</svg>\n")
	io.WriteString(w, b.String())
}
