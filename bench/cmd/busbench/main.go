// Command busbench measures busd side by side with the physical limit (a
// direct socket and a minimal relay) and with NATS, D-Bus (dbus-daemon,
// dbus-broker) and MQTT (mosquitto) where installed, each role in its own
// process, interleaving the systems repetition by repetition.
//
//	busbench [-quick] [-json] [-reps N] [-only a,b] [-systems x,y] [-svg FILE]
//
// It prints a Markdown table per scenario with each system's median, min and
// max and busd's advantage over it; -json prints one JSON object per scenario
// and system instead; the payload-size sweep (-only sweep) is one table,
// a row per size. See docs/PERFORMANCE.md and docs/PAYLOADS.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/busd/busd/bench/harness"
)

func main() {
	harness.RunChild() // a re-executed role never returns from here

	quick := flag.Bool("quick", false, "run every scenario but bulk-1GiB-4sub briefly (starting none after five minutes)")
	asJSON := flag.Bool("json", false, "print one JSON object per scenario and system")
	reps := flag.Int("reps", 0, "repetitions per system (default 5, or 1 with -quick)")
	only := flag.String("only", "", "comma-separated scenario keys to run, or groups of them (sweep: the payload-size sweep)")
	systems := flag.String("systems", "", "comma-separated system keys to run (default all)")
	svg := flag.String("svg", "", "also write a chart of busd's advantage to this SVG file")
	verbose := flag.Bool("v", false, "log each repetition to stderr")
	flag.Parse()

	o := harness.Options{Quick: *quick, Reps: *reps}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if *systems != "" {
		o.Systems = strings.Split(*systems, ",")
	}
	if *verbose {
		o.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	if *quick {
		// Five minutes: a quiet quick run took 140-210 s before the
		// payload-size sweep, which adds about 40 s and runs last.
		o.Budget = 300 * time.Second
	}
	start := time.Now()
	results := harness.Run(o)
	if *asJSON {
		harness.WriteJSON(os.Stdout, results)
	} else {
		fmt.Printf("busbench: %d results in %v\n", len(results), time.Since(start).Round(time.Second))
		harness.WriteTables(os.Stdout, results)
	}
	if *svg != "" {
		f, err := os.Create(*svg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "busbench:", err)
			os.Exit(1)
		}
		harness.WriteSVG(f, results)
		f.Close()
	}
}
