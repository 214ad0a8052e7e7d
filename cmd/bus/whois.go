package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
)

func whoisFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	timeout := fs.Duration("timeout", 5*time.Second, "wait at most `D` for the broker's answer")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usageError(lookup("whois"))
		}
		id, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil {
			return cli.Usagef("CONNID %q: not a connection id (the conn= of a message 'bus sub' prints)", args[0])
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
		p, err := c.Peer(rctx, id)
		switch {
		case errors.Is(err, clientlib.ErrNoSuchConn):
			return fmt.Errorf("no connection %d on this bus: it has closed, or never was (ids are not reused)", id)
		case err != nil:
			return err
		}
		defer p.Close()
		return printPeer(e, p)
	}
}

// printPeer writes what the broker said of a connection, one field a line,
// and the executable of its process, verified through its pidfd; if that
// cannot be verified the line says why and printPeer fails.
func printPeer(e *env, p *clientlib.Peer) error {
	w := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(w, "conn\t%d\n", p.ConnID)
	fmt.Fprintf(w, "pid\t%d\n", p.PID)
	fmt.Fprintf(w, "uid\t%d\n", p.UID)
	fmt.Fprintf(w, "gid\t%d\n", p.GID)
	fmt.Fprintf(w, "name\t%s\n", strconv.Quote(p.Name))
	fmt.Fprintf(w, "since\t%s\n", p.Since.Format(time.RFC3339Nano))
	exe, verr := p.Exe()
	if verr == nil {
		fmt.Fprintf(w, "exe\t%s\n", exe)
	} else {
		fmt.Fprintf(w, "exe\t? (not verified)\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// verr names the connection and why: the process has exited (so its
	// pid may be another's), or it cannot be checked from here.
	return verr
}
