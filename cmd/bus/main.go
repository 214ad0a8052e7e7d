// Command bus talks to a busd message bus from the shell.
//
//	bus pub [-count N] [-attach FILE]... TOPIC [DATA]
//	bus sub [-count N] [-raw] [-cat-fds] PATTERN...
//
// Every subcommand takes -dir, -name and -socket, and finds the bus the way
// busd does: -socket or $BUSD_SOCKET, else DIR/NAME.sock with DIR from
// $BUSD_DIR, $XDG_RUNTIME_DIR/busd or /tmp/busd-$UID.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
)

const usage = `usage: bus COMMAND [flags] ARGS

commands:
  pub [-count N] [-attach FILE]... TOPIC [DATA]
        publish DATA to TOPIC, or each line of stdin without DATA
  sub [-count N] [-raw] [-cat-fds] PATTERN...
        print the messages published to topics matching the patterns

Run 'bus COMMAND -h' for a command's flags.
`

// command is one subcommand: its flags are registered on fs, then run gets
// the remaining arguments.
type command struct {
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

var commands = map[string]command{
	"pub": {pubFlags},
	"sub": {subFlags},
}

// env is what every subcommand shares: the resolved bus and the streams.
type env struct {
	socket, dir, name string
	stdin             io.Reader
	stdout, stderr    io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	if err != nil {
		if msg := err.Error(); !errors.Is(err, flag.ErrHelp) {
			if !strings.HasPrefix(msg, "bus: ") {
				msg = "bus: " + msg
			}
			fmt.Fprintln(os.Stderr, msg)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, e *env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(e.stderr, usage)
		return flag.ErrHelp
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(e.stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("bus "+args[0], flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.dir, "dir", "", "bus directory (default $BUSD_DIR, else $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID)")
	fs.StringVar(&e.name, "name", clientlib.DefaultBus, "bus name: the socket is DIR/NAME.sock")
	fs.StringVar(&e.socket, "socket", "", "socket path, overriding -dir and -name (default $BUSD_SOCKET)")
	runCmd := cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	return runCmd(ctx, e, fs.Args())
}

// connect connects to the bus the flags name, waiting at most 5 seconds.
func (e *env) connect(ctx context.Context) (*clientlib.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := clientlib.Connect(cctx,
		clientlib.WithSocket(clientlib.ResolveSocket(e.socket, e.dir, e.name)),
		clientlib.WithName("bus-cli"),
		clientlib.WithErrorHandler(func(_ *clientlib.Conn, _ *clientlib.Subscription, err error) {
			fmt.Fprintln(e.stderr, "bus:", err)
		}))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		err = fmt.Errorf("%w (is busd running? start it with 'busd' or 'make run', or point -dir, -name or -socket at a running bus)", err)
	}
	return c, err
}
