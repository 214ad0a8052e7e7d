package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/busd/busd/clientlib"
	"golang.org/x/sys/unix"
)

const statArgs = "[-once] [-json] [-subs] [-interval D] [-timeout D]"

// connRow is one connection of `bus stat`, and its -json object: the
// broker's counters, and the rates since the previous sample (nil in the
// first).
type connRow struct {
	ConnID     uint64    `json:"conn_id"`
	PID        int       `json:"pid"`
	UID        int       `json:"uid"`
	GID        int       `json:"gid"`
	Name       string    `json:"name"`
	Since      time.Time `json:"since"`
	Subs       int       `json:"subs"`
	MsgsIn     uint64    `json:"msgs_in"`
	BytesIn    uint64    `json:"bytes_in"`
	MsgsOut    uint64    `json:"msgs_out"`
	BytesOut   uint64    `json:"bytes_out"`
	Pending    int       `json:"pending"`
	PendingFDs int       `json:"pending_fds"`
	Dropped    uint64    `json:"dropped"`
	IdleMS     int64     `json:"idle_ms"`
	InRate     *float64  `json:"in_per_sec,omitempty"`  // messages published a second
	OutRate    *float64  `json:"out_per_sec,omitempty"` // messages received a second
}

// subRow is one line of `bus stat -subs`, and its -json object.
type subRow struct {
	Pattern  string `json:"pattern"`
	Group    string `json:"group,omitempty"`
	Subs     int    `json:"subs"`
	Monitors int    `json:"monitors"`
}

// statFlags runs `bus stat`. It leaves out its own connection and inbox:
// their traffic is its samples.
func statFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	once := fs.Bool("once", false, "print one sample and exit, rather than refresh until ctrl-C")
	asJSON := fs.Bool("json", false, "print one JSON object a line for each connection (or pattern) of each sample")
	subs := fs.Bool("subs", false, "list the patterns subscribed to, with their counts, rather than the connections")
	interval := fs.Duration("interval", 2*time.Second, "refresh every `D`")
	timeout := fs.Duration("timeout", 5*time.Second, "wait at most `D` for each of the broker's answers")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usageError(lookup("stat"))
		}
		if err := checkTimeout(*timeout); err != nil {
			return err
		}
		if err := checkTimeout(*interval); err != nil {
			return err
		}
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		s := &statter{e: e, c: c, json: *asJSON, timeout: *timeout, clear: !*once && !*asJSON && isTerminal(e.stdout)}
		sample := s.conns
		if *subs {
			sample = s.subs
		}
		tick := time.NewTicker(*interval)
		defer tick.Stop()
		for {
			if err := sample(ctx); err != nil {
				if ctx.Err() != nil {
					return nil // ctrl-C while asking
				}
				return err
			}
			if *once {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil // ctrl-C: done, as for sub
			case <-tick.C:
			}
		}
	}
}

// statter takes the samples of one `bus stat`.
type statter struct {
	e       *env
	c       *clientlib.Conn
	json    bool
	clear   bool // redraw in place, as top does: stdout is a terminal
	timeout time.Duration
	prev    map[uint64]clientlib.ConnStats // the last sample, for rates
	prevAt  time.Time
	printed int // samples printed so far
}

// conns takes a sample of the connections and prints it.
func (s *statter) conns(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conns, all, err := s.c.BrokerConns(rctx)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := make([]connRow, 0, len(conns))
	next := make(map[uint64]clientlib.ConnStats, len(conns))
	for _, cs := range conns {
		if cs.ConnID == s.c.ConnID() {
			continue // its own, whose traffic is these samples
		}
		rows = append(rows, connRow{
			ConnID: cs.ConnID, PID: cs.PID, UID: cs.UID, GID: cs.GID, Name: cs.Name, Since: cs.Since, Subs: cs.Subs,
			MsgsIn: cs.MsgsIn, BytesIn: cs.BytesIn, MsgsOut: cs.MsgsOut, BytesOut: cs.BytesOut,
			Pending: cs.Pending, PendingFDs: cs.PendingFDs, Dropped: cs.Dropped, IdleMS: cs.Idle.Milliseconds(),
		})
		if p, ok := s.prev[cs.ConnID]; ok {
			secs := now.Sub(s.prevAt).Seconds()
			in, out := float64(cs.MsgsIn-p.MsgsIn)/secs, float64(cs.MsgsOut-p.MsgsOut)/secs
			rows[len(rows)-1].InRate, rows[len(rows)-1].OutRate = &in, &out
		}
		next[cs.ConnID] = cs
	}
	s.prev, s.prevAt = next, now
	scope := "your uid's connections (the broker shows other uids' only to its own uid, or by policy)"
	if all {
		scope = "every uid's connections"
	}
	heading := fmt.Sprintf("%s  %d connections: %s", now.Format(time.TimeOnly), len(rows), scope)
	return printSample(s, rows, heading, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "CONN\tPID\tUID\tSUBS\tIN\tOUT\tIN/s\tOUT/s\tPENDING\tFDS\tDROPS\tIDLE\t NAME")
		for _, r := range rows {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t %s\n",
				r.ConnID, r.PID, r.UID, r.Subs, r.MsgsIn, r.MsgsOut, rate(r.InRate), rate(r.OutRate),
				bytesText(r.Pending), r.PendingFDs, r.Dropped, (time.Duration(r.IdleMS) * time.Millisecond).Round(time.Second), r.Name)
		}
		return tw.Flush()
	})
}

// subs takes a sample of the patterns subscribed to and prints it.
func (s *statter) subs(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	subs, total, all, err := s.c.BrokerSubs(rctx)
	if err != nil {
		return err
	}
	rows := make([]subRow, 0, len(subs))
	own := s.c.Inbox() + ".>"
	for _, sub := range subs {
		if sub.Pattern == own && sub.Group == "" {
			total-- // its own inbox, where the answers come
			continue
		}
		rows = append(rows, subRow{Pattern: sub.Pattern, Group: sub.Group, Subs: sub.Subs, Monitors: sub.Monitors})
	}
	scope := "your uid's subscriptions"
	if all {
		scope = "every uid's subscriptions"
	}
	heading := fmt.Sprintf("%s  %d patterns: %s", time.Now().Format(time.TimeOnly), total, scope)
	if total > len(rows) {
		heading += fmt.Sprintf(" (the first %d listed)", len(rows))
	}
	return printSample(s, rows, heading, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SUBS\tMONITORS\tGROUP\tPATTERN")
		for _, r := range rows {
			group := r.Group
			if group == "" {
				group = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", r.Subs, r.Monitors, group, r.Pattern)
		}
		return tw.Flush()
	})
}

// printSample prints a sample's rows: one JSON object a line with -json,
// else under its heading by table, on a fresh screen on a terminal.
func printSample[T any](s *statter, rows []T, heading string, table func(io.Writer) error) error {
	if s.json {
		return printJSONLines(s.e.stdout, rows)
	}
	s.startScreen()
	fmt.Fprintln(s.e.stdout, heading)
	return table(s.e.stdout)
}

// startScreen begins a sample: on a terminal it redraws the screen, as top
// does; elsewhere samples follow each other, a blank line apart.
func (s *statter) startScreen() {
	switch {
	case s.clear:
		io.WriteString(s.e.stdout, "\x1b[H\x1b[2J")
	case s.printed > 0:
		fmt.Fprintln(s.e.stdout)
	}
	s.printed++
}

func rate(r *float64) string {
	if r == nil {
		return "-" // the first sample: nothing to compare with
	}
	return strconv.FormatFloat(*r, 'f', 1, 64)
}

// bytesText writes n bytes the way people read them.
func bytesText(n int) string {
	switch {
	case n < 1<<10:
		return strconv.Itoa(n)
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + "K"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "M"
}

// printJSONLines writes one JSON object a line.
func printJSONLines[T any](w io.Writer, rows []T) error {
	enc := json.NewEncoder(w)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
