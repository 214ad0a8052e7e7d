package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/busd/busd/clientlib"
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
	file := fs.String("file", "", "send the content of file `PATH` as one payload, of any size up to the bus's limit (a large one in a sealed memfd the kernel fills: no copy through bus)")
	var out outgoing
	out.register(fs, "DATA, or each line of stdin, is JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usageError(lookup("pub"))
		}
		if *file != "" && len(args) != 1 {
			return cli.Usagef("-file: the payload is the file's content: give TOPIC alone, without DATA")
		}
		if *file != "" && out.json {
			return cli.Usagef("-file: the payload is the file's bytes as they are: it does not go with -json")
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
			publish := publishOf(c, *retain)
			for range *count {
				if err := publish(m); err != nil {
					return err
				}
			}
			return nil
		}
		switch {
		case *file != "":
			err = sendFile(c, *file, *retain, args[0], &out, files, *count, publishOf(c, *retain))
		case len(args) == 2:
			err = send([]byte(args[1]))
		default:
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

// publishOf is how pub publishes: retained with -retain.
func publishOf(c *clientlib.Conn, retain bool) func(*clientlib.Msg) error {
	if retain {
		return c.PublishRetainedMsg
	}
	return c.PublishMsg
}

// sendFile publishes the content of path to topic count times, with the
// -H headers and the -attach files. The file is read once: a large one
// goes as a sealed memfd, which the same descriptor carries each time.
func sendFile(c *clientlib.Conn, path string, retain bool, topic string, out *outgoing, files []*os.File, count int, publish func(*clientlib.Msg) error) error {
	p, err := readFilePayload(path, c, retain)
	if err != nil {
		return err
	}
	defer p.close()
	m, err := out.message(topic, p.data)
	if err != nil {
		return err
	}
	m.Files, m.PayloadFile = files, p.file
	for range count {
		if err := publish(m); err != nil {
			return err
		}
	}
	return nil
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
