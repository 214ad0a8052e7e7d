package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/busd/busd/internal/cli"
)

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string     { return fmt.Sprint(*r) }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func pubFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	count := fs.Int("count", 1, "send each message N times")
	retain := fs.Bool("retain", false, "ask the bus to keep the message as TOPIC's retained value (empty DATA clears it): sub -retained shows it first")
	var attach repeated
	fs.Var(&attach, "attach", "open FILE and send its descriptor with every message (repeatable)")
	var out outgoing
	out.register(fs, "DATA, or each line of stdin, is JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usageError(lookup("pub"))
		}
		if *count < 1 {
			return cli.Usagef("-count %d: must be at least 1", *count)
		}
		if *retain && len(attach) > 0 {
			return cli.Usagef("-retain: a retained message carries no descriptors (-attach)")
		}
		if err := out.prepare(); err != nil {
			return err
		}
		files, err := openAll(attach)
		if err != nil {
			return err
		}
		defer closeAll(files)
		e.checksRefusals = true
		c, err := e.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		send := func(data []byte) error {
			m, err := out.message(args[0], data)
			if err != nil {
				return err
			}
			m.Files = files
			publish := c.PublishMsg
			if *retain {
				publish = c.PublishRetainedMsg
			}
			for range *count {
				if err := publish(m); err != nil {
					return err
				}
			}
			return nil
		}
		if len(args) == 2 {
			err = send([]byte(args[1]))
		} else {
			err = eachLine(e, send)
		}
		if err != nil {
			return err
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Flush(fctx); err != nil { // the broker has it all before we exit
			return err
		}
		return c.LastRefusal() // and took it all
	}
}

// eachLine calls send with every line of stdin, without its newline. An
// error names the line, for -json input.
func eachLine(e *env, send func([]byte) error) error {
	sc := bufio.NewScanner(e.stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		if err := send(sc.Bytes()); err != nil {
			return fmt.Errorf("stdin line %d: %w", n, err)
		}
	}
	return sc.Err()
}

func openAll(paths []string) ([]*os.File, error) {
	var files []*os.File
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("-attach: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
