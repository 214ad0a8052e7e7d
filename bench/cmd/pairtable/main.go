// Command pairtable reads `go test -bench` output whose benchmark names end
// in /<system> and prints a Markdown table that puts the systems of each
// workload side by side, with busd's speed as a ratio to each other system
// (above 1 means busd is faster; for B/sub, smaller is better and the ratio
// is the other system's figure over busd's likewise).
//
//	go test -run '^$' -bench . -benchmem ./sublist | go run ./cmd/pairtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// line matches "BenchmarkX/a/b/sys-2   N   12.3 ns/op   ...metrics".
var line = regexp.MustCompile(`^Benchmark\S*?/(\S+)/([a-z0-9-]+?)(?:-\d+)?\s+\d+\s+(.*)$`)

type row struct {
	name    string
	systems []string
	figs    map[string]map[string]float64 // system -> unit -> value
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pairtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var rows []*row
	byName := map[string]*row{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		r := byName[m[1]]
		if r == nil {
			r = &row{name: m[1], figs: map[string]map[string]float64{}}
			byName[m[1]] = r
			rows = append(rows, r)
		}
		r.systems = append(r.systems, m[2])
		r.figs[m[2]] = metrics(m[3])
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintln(out, "| workload | busd | other | busd advantage | busd allocs/op | other allocs/op |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, r := range rows {
		b := r.figs["busd"]
		for _, sys := range r.systems {
			if sys == "busd" || b == nil {
				continue
			}
			o := r.figs[sys]
			unit := "ns/op"
			if _, ok := b["B/sub"]; ok {
				unit = "B/sub"
			}
			fmt.Fprintf(out, "| %s | %s %s | %s: %s | %.1f× | %s | %s |\n", r.name,
				num(b[unit]), unit, sys, num(o[unit]), o[unit]/b[unit],
				num(b["allocs/op"]), num(o["allocs/op"]))
		}
	}
	return nil
}

// metrics parses "12.3 ns/op  0 B/op  0 allocs/op" into unit -> value.
func metrics(s string) map[string]float64 {
	f := strings.Fields(s)
	m := map[string]float64{}
	for i := 0; i+1 < len(f); i += 2 {
		if v, err := strconv.ParseFloat(f[i], 64); err == nil {
			m[f[i+1]] = v
		}
	}
	return m
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
