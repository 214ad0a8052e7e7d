package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
)

func replyFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	count := fs.Int("count", 0, "exit after N replies (0: run until interrupted); with -queue, requests already on their way are answered too")
	group := fs.String("queue", "", "join queue `GROUP`: each request goes to one member of the group")
	command := fs.String("exec", "", "reply with the stdout of `CMD`, run by sh -c with the request's payload on stdin; if it fails, say so on stderr and still reply with its stdout")
	asJSON := fs.Bool("json", false, "DATA, or CMD's output, is JSON sent as msgpack; with -exec, CMD reads the request as a line of JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) < 1 || len(args) > 2 || (len(args) == 2) == (*command != "") {
			return cli.Usagef("usage: bus reply %s (DATA or -exec, not both)", replyArgs)
		}
		if *count < 0 {
			return cli.Usagef("-count %d: must not be negative", *count)
		}
		r := &replier{e: e, command: *command}
		if *asJSON {
			r.jp = newJSONPrinter(e.stderr)
		}
		if len(args) == 2 {
			r.data = []byte(args[1])
			if _, err := r.decode(r.data); err != nil {
				return err
			}
		}
		e.waitsForBus = true
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		sub, err := c.QueueSubscribeSync(args[0], *group)
		if err != nil {
			return err
		}
		if err := e.flush(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "bus: replying to %q%s on %s\n", args[0], groupNote(*group), e.socketPath())
		for n := 0; *count == 0 || n < *count; {
			m, err := sub.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil // interrupted: a normal way to stop
				}
				return err
			}
			if m.Reply == "" {
				fmt.Fprintf(e.stderr, "bus: %s: ignoring a message with no reply topic\n", m.Topic)
				m.CloseFiles()
				continue
			}
			err = r.answer(ctx, m)
			m.CloseFiles()
			switch {
			case ctx.Err() != nil:
				return nil
			case c.Err() != nil:
				return c.Err()
			case err != nil:
				// One bad request or reply (too large, say) should not
				// take the service down.
				fmt.Fprintln(e.stderr, errLine(fmt.Errorf("%s: %w", m.Topic, err)))
			default:
				n++
			}
		}
		if *group != "" {
			// Leaving the group: requests the broker already routed here
			// would reach no other member, so answer them too.
			if err := r.drain(ctx, sub); err != nil {
				return err
			}
		}
		return e.flush(ctx, c) // the last reply is out before we exit
	}
}

// drain leaves sub's queue group and answers what was already on its way.
func (r *replier) drain(ctx context.Context, sub *clientlib.Subscription) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second) // for the broker's confirmation only
	err := sub.Drain(dctx)
	cancel()
	if err != nil {
		return err
	}
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return nil // ErrClosed: nothing is left
		}
		if m.Reply != "" {
			if err := r.answer(ctx, m); err != nil {
				fmt.Fprintln(r.e.stderr, errLine(fmt.Errorf("%s: %w", m.Topic, err)))
			}
		}
		m.CloseFiles()
	}
}

// replier answers requests with fixed data or with a command's output.
type replier struct {
	e       *env
	jp      *jsonPrinter // set with -json: shows requests to the command
	command string
	data    []byte
}

func (r *replier) answer(ctx context.Context, m *clientlib.Msg) error {
	if r.command == "" {
		return r.respond(m, r.data)
	}
	out, err := r.run(ctx, m)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		fmt.Fprintf(r.e.stderr, "bus: -exec %q: %v; replying with its output anyway\n", r.command, err)
	}
	return r.respond(m, out)
}

// respond sends b, with -json as the msgpack of the JSON it holds. Output
// that is not JSON is sent as it is, with a warning: the requester is
// waiting, and an answer it cannot decode says more than a timeout.
func (r *replier) respond(m *clientlib.Msg, b []byte) error {
	v, err := r.decode(b)
	if err != nil {
		fmt.Fprintf(r.e.stderr, "bus: -exec %q: %v; replying with its output as bytes\n", r.command, err)
		return m.Respond(b)
	}
	if r.jp != nil {
		return m.RespondValue(v)
	}
	return m.Respond(b)
}

// decode parses b as JSON with -json, and does nothing without.
func (r *replier) decode(b []byte) (any, error) {
	if r.jp == nil {
		return nil, nil
	}
	return parseJSON(b)
}

// run runs the command on m's payload and returns its stdout. The command
// gets a process group of its own so that cancelling ctx (an interrupt)
// kills whatever it started too, not only the shell; WaitDelay bounds the
// wait for a straggler that still holds stdout open.
func (r *replier) run(ctx context.Context, m *clientlib.Msg) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", r.command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	cmd.Stdin = bytes.NewReader(m.Data)
	if r.jp != nil {
		cmd.Stdin = bytes.NewReader(r.jp.line(m))
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = r.e.stderr
	err := cmd.Run()
	return out.Bytes(), err
}
