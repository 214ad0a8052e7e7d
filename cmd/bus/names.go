package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/busd/busd/clientlib"
)

const (
	namesArgs = "[-json] [-timeout D]"
	ownArgs   = "[-replace] [-allow-replacement] [-no-queue] NAME"
)

// holderJSON is an owner or a queued connection in `bus names -json`.
type holderJSON struct {
	ConnID uint64 `json:"conn_id"`
	PID    int    `json:"pid"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Name   string `json:"name"`
}

// nameRow is one name of `bus names -json`.
type nameRow struct {
	Name  string       `json:"name"`
	Owner *holderJSON  `json:"owner"` // null: nobody owns it
	Queue []holderJSON `json:"queue"`
	Seq   uint64       `json:"seq"`
}

func holderRow(h *clientlib.NameHolder) *holderJSON {
	if h == nil {
		return nil
	}
	return &holderJSON{ConnID: h.ConnID, PID: h.PID, UID: h.UID, GID: h.GID, Name: h.Name}
}

func namesFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	asJSON := fs.Bool("json", false, "print one JSON object a line for each name")
	timeout := fs.Duration("timeout", 5*time.Second, "wait at most `D` for the broker's answer")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usageError(lookup("names"))
		}
		if err := checkTimeout(*timeout); err != nil {
			return err
		}
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		names, total, err := c.Names(rctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			for _, n := range names {
				row := nameRow{Name: n.Name, Owner: holderRow(n.Owner), Queue: []holderJSON{}, Seq: n.Seq}
				for _, q := range n.Queue {
					row.Queue = append(row.Queue, *holderRow(&q))
				}
				if err := enc.Encode(&row); err != nil {
					return err
				}
			}
		} else if err := printNames(e, names); err != nil {
			return err
		}
		if total > len(names) {
			fmt.Fprintf(e.stderr, "bus: %d names, %d shown\n", total, len(names))
		}
		return nil
	}
}

// printNames prints a table: each name, its owner's connection, pid and
// uid, and the connections queued for it, next owner first.
func printNames(e *env, names []clientlib.NameOwner) error {
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCONN\tPID\tUID\tQUEUE")
	for _, n := range names {
		conn, pid, uid := "-", "-", "-"
		if o := n.Owner; o != nil {
			conn, pid, uid = strconv.FormatUint(o.ConnID, 10), strconv.Itoa(o.PID), strconv.Itoa(o.UID)
		}
		queue := make([]string, len(n.Queue))
		for i, q := range n.Queue {
			queue[i] = fmt.Sprintf("%d(pid %d)", q.ConnID, q.PID)
		}
		q := strings.Join(queue, " ")
		if q == "" {
			q = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.Name, conn, pid, uid, q)
	}
	return w.Flush()
}

func ownFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	replace := fs.Bool("replace", false, "take the name from an owner that allows replacement")
	// No backquotes in these usages: flag takes a backquoted word as the
	// name of the flag's value, and these take none.
	allow := fs.Bool("allow-replacement", false, "let a later 'bus own -replace' take the name")
	noQueue := fs.Bool("no-queue", false, "fail if another owns the name, rather than wait in its queue")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usageError(lookup("own"))
		}
		name := args[0]
		var flags []clientlib.NameFlag
		if *replace {
			flags = append(flags, clientlib.ReplaceExisting)
		}
		if *allow {
			flags = append(flags, clientlib.AllowReplacement)
		}
		if *noQueue {
			flags = append(flags, clientlib.DoNotQueue)
		}
		e.ownsNames = true
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return own(ctx, e, c, name, flags)
	}
}

// own holds name until ctx ends (SIGINT, SIGTERM), then releases it. It
// prints "owner NAME" on stdout each time this connection becomes the
// owner, and on stderr when it waits in the queue or loses the name.
func own(ctx context.Context, e *env, c *clientlib.Conn, name string, flags []clientlib.NameFlag) error {
	changes, err := c.WatchName(ctx, name)
	if err != nil {
		return err
	}
	res, err := c.RequestName(ctx, name, flags...)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "bus: requested %s: %s\n", name, res)
	owner := false
	switch res {
	case clientlib.NameExists:
		o, err := c.NameOwner(ctx, name)
		if err == nil && o.Owner != nil {
			return fmt.Errorf("%s is owned by conn %d (pid %d), and -no-queue was given", name, o.Owner.ConnID, o.Owner.PID)
		}
		return fmt.Errorf("%s is owned by another connection, and -no-queue was given", name)
	case clientlib.InQueue:
		fmt.Fprintf(e.stderr, "bus: queued for %s\n", name)
	}
	for {
		select {
		case ch, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return release(c, name)
				}
				return e.watchEnded(ctx, c, name) // refused, or the connection ended
			}
			me := ch.New != nil && ch.New.ConnID == c.ConnID()
			switch {
			case me && !owner:
				owner = true
				fmt.Fprintf(e.stdout, "owner %s\n", name)
				if f, ok := e.stdout.(interface{ Sync() error }); ok {
					f.Sync()
				}
			case !me && owner:
				owner = false
				o, err := c.NameOwner(ctx, name)
				if err != nil || queuedIn(o, c.ConnID()) {
					fmt.Fprintf(e.stderr, "bus: lost %s to %s; queued for it\n", name, holderText(ch.New))
					continue
				}
				if ch.New == nil {
					// Nobody has it, and this connection asked for it
					// again (a reconnect): the broker refused, and the
					// reason is on its way to the error handler.
					return e.nameRefusal(ctx, name)
				}
				return fmt.Errorf("lost %s to %s", name, holderText(ch.New))
			}
		case err := <-e.nameNotRestored: // after a reconnect
			o, oerr := c.NameOwner(ctx, name)
			switch {
			case oerr != nil: // lost again: the next reconnect asks again
			case queuedIn(o, c.ConnID()):
				owner = false
				fmt.Fprintf(e.stderr, "bus: queued for %s again: %s owns it now\n", name, holderText(o.Owner))
			case o.Owner != nil && o.Owner.ConnID == c.ConnID(): // taken again meanwhile
			default:
				return err
			}
		case <-e.refused: // the watch of the name
			return e.subscriptionRefused()
		case <-ctx.Done():
			return release(c, name)
		}
	}
}

// holderText names who holds a name, for a line of bus own.
func holderText(h *clientlib.NameHolder) string {
	if h == nil {
		return "nobody"
	}
	return fmt.Sprintf("conn %d (pid %d)", h.ConnID, h.PID)
}

// nameRefusal waits for the reason a reconnect's request for name failed,
// which the error handler passes on, and returns it.
func (e *env) nameRefusal(ctx context.Context, name string) error {
	select {
	case err := <-e.nameNotRestored:
		return err
	case <-e.closed:
	case <-ctx.Done():
	case <-time.After(10 * time.Second): // a reason that never comes is not waited for longer
	}
	return fmt.Errorf("%s was not given back after a reconnect, and nobody owns it", name)
}

// watchEnded says why the watch of own's name ended, which the error
// handler or the connection's end tells.
func (e *env) watchEnded(ctx context.Context, c *clientlib.Conn, name string) error {
	select {
	case <-e.refused:
		return e.subscriptionRefused()
	case <-e.closed:
		return fmt.Errorf("the connection to the bus ended: %w", c.Err())
	case <-ctx.Done():
		return nil
	case <-time.After(10 * time.Second):
	}
	return fmt.Errorf("the watch of %s ended", name)
}

func queuedIn(o clientlib.NameOwner, id uint64) bool {
	for _, q := range o.Queue {
		if q.ConnID == id {
			return true
		}
	}
	return false
}

// release gives the name up, bounded in time: the connection's close
// releases it anyway.
func release(c *clientlib.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.ReleaseName(ctx, name); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
