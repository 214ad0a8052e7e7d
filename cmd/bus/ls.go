package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock"
)

// busEntry is one line of `bus ls`, and its -json object.
type busEntry struct {
	Name   string `json:"name"`
	Socket string `json:"socket"`
	// State is "alive" (a broker holds the bus's lock), "stale" (nobody
	// does: the socket was left by a broker that died) or "?" (the lock
	// could not be read).
	State string `json:"state"`
	// PID is the live broker's pid; for a stale bus, the last one's
	// (which may since be another process's). 0: not known.
	PID int `json:"pid,omitempty"`
	// Started is when the broker started; nil if not known.
	Started *time.Time `json:"started,omitempty"`
	// Conns is the live broker's connection count, as it answered
	// $SYS.req.info; nil when it was not asked (stale) or did not answer
	// (its policy or our trust refused, or it timed out).
	Conns *uint64 `json:"conns"`
	// Error says why State is "?" or Conns is unknown.
	Error string `json:"error,omitempty"`
}

func lsFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	timeout := fs.Duration("timeout", 2*time.Second, "wait at most `D` for each live broker's answer")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usageError(lookup("ls"))
		}
		if err := checkTimeout(*timeout); err != nil {
			return err
		}
		sockets, err := e.lsSockets()
		if err != nil {
			return err
		}
		entries := make([]busEntry, len(sockets))
		forEach(len(sockets), maxProbes, func(i int) {
			entries[i] = e.describe(ctx, sockets[i], *timeout)
		})
		if *asJSON {
			return printEntriesJSON(e.stdout, entries)
		}
		if err := printEntries(e.stdout, entries, time.Now()); err != nil {
			return err
		}
		// The table shows "?" where a bus could not be read or asked;
		// stderr says why (-json carries it in each object's error).
		for _, ent := range entries {
			if ent.Error != "" {
				fmt.Fprintf(e.stderr, "bus: ls %s: %s\n", ent.Name, strings.TrimPrefix(ent.Error, "bus: "))
			}
		}
		return nil
	}
}

// maxProbes bounds the buses bus ls asks at once. Asked in turn, a
// directory of buses whose brokers do not answer took a timeout each;
// asked all at once, a large directory would cost as many connections, and
// descriptors, as it has buses.
const maxProbes = 8

// forEach calls fn for each of 0 to n-1, at most limit calls at a time, and
// returns when all have returned.
func forEach(n, limit int, fn func(int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// lsSockets returns the sockets to list, sorted: the one -socket names,
// or $BUSD_SOCKET unless -dir is given, or else every bus of the directory (-dir, or
// $BUSD_DIR, $XDG_RUNTIME_DIR/busd, /tmp/busd-$UID): each N.sock, and
// each N.lock a broker holds without a socket beside it. Names starting
// with '.' are skipped: a broker binds its socket under such a name
// before it renames it into place. A directory that does not exist has no
// buses.
func (e *env) lsSockets() ([]string, error) {
	switch s := os.Getenv("BUSD_SOCKET"); {
	case e.socket != "":
		return []string{e.socket}, nil
	case e.dir == "" && s != "": // an explicit -dir wins over the environment
		return []string{s}, nil
	}
	dir := e.dir
	if dir == "" {
		dir = clientlib.Dir()
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sockets []string
	for _, ent := range ents {
		name := ent.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if base, ok := strings.CutSuffix(name, ".sock"); ok && ent.Type() == fs.ModeSocket {
			sockets = append(sockets, clientlib.SocketPath(dir, base))
		}
		if base, ok := strings.CutSuffix(name, ".lock"); ok && ent.Type().IsRegular() {
			sock := clientlib.SocketPath(dir, base)
			if _, err := os.Lstat(sock); errors.Is(err, fs.ErrNotExist) {
				if info, err := unixsock.ProbeBus(sock); err == nil && info.Alive {
					sockets = append(sockets, sock)
				}
			}
		}
	}
	slices.Sort(sockets)
	return sockets, nil
}

// describe probes the bus at socket by its lock and, if it is alive, asks
// its broker about itself.
func (e *env) describe(ctx context.Context, socket string, timeout time.Duration) busEntry {
	ent := busEntry{Name: strings.TrimSuffix(filepath.Base(socket), ".sock"), Socket: socket, State: "?"}
	info, err := unixsock.ProbeBus(socket)
	if err != nil {
		ent.Error = err.Error()
		return ent
	}
	ent.State, ent.PID = "stale", info.PID
	if !info.Started.IsZero() {
		ent.Started = &info.Started
	}
	if !info.Alive {
		return ent
	}
	ent.State = "alive"
	bi, err := e.brokerInfo(ctx, socket, timeout)
	if err != nil {
		ent.Error = err.Error()
		return ent
	}
	started := time.Unix(0, int64(bi.Started))
	ent.PID, ent.Started, ent.Conns = int(bi.PID), &started, &bi.Conns
	return ent
}

// brokerInfo connects to the broker at socket and asks $SYS.req.info,
// within timeout.
func (e *env) brokerInfo(ctx context.Context, socket string, timeout time.Duration) (_ *wire.BrokerInfo, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		// Said plainly: a bare "context deadline exceeded" reads as bus
		// ls's own failure rather than the broker's silence.
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the broker did not answer within %v: %w", timeout, err)
		}
	}()
	c, err := clientlib.Connect(ctx,
		clientlib.WithSocket(socket),
		clientlib.WithName("bus-ls"),
		clientlib.WithNoWait(), // a bus that went since its lock was probed is down, not waited for
		clientlib.WithTrustedUIDs(e.trust...),
		clientlib.WithErrorHandler(func(*clientlib.Conn, *clientlib.Subscription, error) {}))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r, err := c.Request(ctx, wire.SysReqInfo, nil)
	if err != nil {
		return nil, err
	}
	defer r.CloseFiles()
	if r.Origin.Conn != 0 {
		return nil, fmt.Errorf("the answer came from connection %d, not from the broker", r.Origin.Conn)
	}
	if st := r.Header.Get(wire.StatusHeader); st != "" {
		return nil, fmt.Errorf("the broker answered status %s: %s", st, r.Header.Get(wire.ReasonHeader))
	}
	var bi wire.BrokerInfo
	if err := wire.DecodeBody(r.Data, &bi); err != nil {
		return nil, fmt.Errorf("the broker's answer: %w", err)
	}
	return &bi, nil
}

// printEntries writes one aligned line per bus under a heading.
func printEntries(w io.Writer, entries []busEntry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOCKET\tSTATE\tPID\tUPTIME\tCONNS")
	for _, ent := range entries {
		pid, uptime, conns := "-", "-", "-"
		if ent.State == "alive" {
			pid, uptime, conns = "?", "?", "?"
			if ent.PID > 0 {
				pid = strconv.Itoa(ent.PID)
			}
			if ent.Started != nil {
				uptime = now.Sub(*ent.Started).Round(time.Second).String()
			}
			if ent.Conns != nil {
				conns = strconv.FormatUint(*ent.Conns, 10)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ent.Name, ent.Socket, ent.State, pid, uptime, conns)
	}
	return tw.Flush()
}

// printEntriesJSON writes one JSON object a line.
func printEntriesJSON(w io.Writer, entries []busEntry) error {
	enc := json.NewEncoder(w)
	for _, ent := range entries {
		if err := enc.Encode(ent); err != nil {
			return err
		}
	}
	return nil
}
