// Command bus talks to a busd message bus from the shell.
//
//	bus [connection flags] COMMAND [flags] ARGS
//
//	bus pub [-count N] [-attach FILE]... [-H key=value]... [-json | -file PATH] TOPIC [DATA]
//	bus sub [-count N] [-raw | -json | -o DIR] [-cat-fds] [-queue GROUP] PATTERN...
//	bus monitor [-json] [PATTERN]
//	bus req [-timeout D] [-H key=value]... [-json] [-v] TOPIC [DATA]
//	bus reply [-count N] [-queue GROUP] [-json] [-exec CMD] PATTERN [DATA]
//	bus stream [-timeout D] listen|dial NAME
//	bus stream write|read TOPIC
//	bus whois [-timeout D] CONNID
//	bus ls [-json] [-timeout D]
//	bus stat [-once] [-json] [-subs] [-interval D] [-timeout D]
//	bus help [COMMAND]
//	bus version
//	bus completion bash|zsh|fish
//
// pub sends DATA, or each line of stdin, or with -file a file's content
// as one payload of any size up to the bus's limit (a large one goes in a
// sealed memfd that the kernel fills from the file); sub prints what
// arrives (and reports on stderr what it lost by falling behind), or with
// -o DIR writes each payload to a file of its own in DIR, 000001-TOPIC,
// 000002-TOPIC, ... (a payload in a memfd copied by the kernel, a topic
// too long for a file name cut short); req sends one
// request, DATA or all of stdin, and prints the reply; reply answers
// requests with DATA, or with the output of CMD run by sh -c with the
// request's payload on its stdin. If CMD fails, reply says so on stderr and
// still answers with whatever CMD wrote to stdout, so the requester is not
// left waiting. stream connects stdin and stdout to a direct stream (listen
// takes one, dial opens one) or to a topic stream (write sends stdin, read
// prints what a writer sends, to its end). whois asks the broker who holds
// a connection (the conn= of a message sub prints) and prints its
// credentials, name, start and executable, read through a pidfd so that a
// recycled pid cannot fool it; it fails for a connection that has closed
// or whose process has exited. ls lists the buses of the directory:
// each one's name, socket, whether a broker holds its lock (alive) or
// nobody does (stale: left by a broker that died), and for a live one its
// pid, uptime and connections, as it answers $SYS.req.info ("?" where its
// policy or -trust does not let bus ask). stat shows the bus's
// connections, refreshed like top until ctrl-C (or -once), or with -subs
// the patterns subscribed to, as the broker answers $SYS.req.conns and
// $SYS.req.subs. help prints the usage, or a
// command's, on stdout (as do -h and --help); version prints the module
// version and the VCS revision of the build (also -version); completion
// prints a completion script for the shell.
//
// monitor prints what sub prints for each message its pattern (default >)
// matches, with fds the number the message carried, without taking part:
// it is not a responder, takes nothing from queue groups or streams, gets
// no descriptors, and the bus never waits for it; what it misses is a
// "-- lost N messages: REASON" line.
//
// sub prints a line per message: topic, size, origin, fds, the reply topic
// if any, the headers in the order sent as [key=value ...] (a repeated key
// as often as it came), and the payload.
//
// With -json, pub, req and reply take JSON and send it as msgpack; req and
// reply show msgpack payloads as one line of JSON each (other payloads as
// a JSON string, base64 if they are not UTF-8); and sub prints each
// message as a JSON object on one line:
//
//	{"topic":"cfg.set","origin":{"conn":7,"pid":4242,"uid":1000,"gid":1000},
//	 "reply":"cfg.done","headers":[["trace","42"],["via","a"],["via","b"]],
//	 "fds":1,"value":{"size":12,"theme":"dark"}}
//
// topic and origin (the publisher's connection id and credentials, as the
// broker stamped them) are always there; reply, headers and fds only when
// the message has them. headers is a list of [key, value] pairs in the
// order sent, a repeated key as often as it came (bytes of a value that
// are not UTF-8 show as U+FFFD). The payload is in exactly one of value
// (the decoded msgpack of a payload whose Content-Type says msgpack),
// text (a payload that is UTF-8) or base64 (any other payload).
//
// Flags go before or after the arguments (bus sub x -count 1 is bus sub
// -count 1 x); "--" ends them, for an argument that starts with '-'. A
// duration takes a unit: -timeout 1s, not -timeout 1.
//
// Every subcommand takes the connection flags -dir, -name and -socket,
// before the command or among its own flags, and finds the bus the way
// busd does: -socket or $BUSD_SOCKET, else DIR/NAME.sock with DIR from
// -dir, $BUSD_DIR, $XDG_RUNTIME_DIR/busd or /tmp/busd-$UID. -trust UID,...
// also accepts a bus run by those uids (besides yours and root's), and
// -no-reconnect makes a command fail when its connection drops rather than
// reconnect.
//
// bus exits with status 0 when done (sub, reply and stream also on ctrl-C),
// 1 when the command failed (the bus refused, no reply came in time, the
// connection ended under -no-reconnect, ...), and 2 when the command line
// cannot be run as written. Each failure is one line on stderr, starting
// "bus: ", saying what went wrong and, where there is one, what to do.
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
	"sync"
	"syscall"
	"time"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
	"github.com/busd/busd/unixsock"
)

// The synopsis of each command, shared by the usage text and the errors
// that show it. Keep the package comment in step.
const (
	pubArgs    = "[-count N] [-attach FILE]... [-H key=value]... [-json | -file PATH] [-retain] TOPIC [DATA]"
	subArgs    = "[-count N] [-raw | -json | -o DIR] [-cat-fds] [-queue GROUP | -retained] PATTERN..."
	reqArgs    = "[-timeout D] [-H key=value]... [-json] [-v] TOPIC [DATA]"
	replyArgs  = "[-count N] [-queue GROUP] [-json] [-exec CMD] PATTERN [DATA]"
	streamArgs = "[-timeout D] listen|dial NAME | write|read TOPIC"
	whoisArgs  = "[-timeout D] CONNID"
	lsArgs     = "[-json] [-timeout D]"
)

// env is what every subcommand shares: the resolved bus and the streams.
type env struct {
	socket, dir, name string
	trust             uids // -trust: uids whose buses to trust besides ours and root's
	stdin             io.Reader
	stdout, stderr    io.Writer
	// checksRefusals says the command reports the broker's refusals of
	// what it sent itself, after a flush (refusedAfterFlush), so the
	// error handler leaves them out rather than print them twice.
	checksRefusals bool
	noReconnect    bool // -no-reconnect
	// waitsForBus says the command waits for a bus that is not up yet
	// (sub, reply, stream listen: they are started before the bus as often
	// as after it); the others fail at once.
	waitsForBus bool
	closed      chan struct{} // closed when the connection has ended for good
	command     string        // the command being run, for the hint after a usage error

	// refused is closed when the broker refuses one of the command's
	// subscriptions, refusal says why: at the start, or when a restarted
	// broker (a new policy, say) refuses to restore it. A command that
	// would otherwise wait for messages that can no longer come fails.
	refused     chan struct{}
	refusal     error
	refusedOnce sync.Once
	// handledRefusal is the last refusal the error handler has seen: a
	// newer c.LastRefusal() is one still on its way to the handler.
	handledRefusal error
	// nameNotRestored tells bus own (ownsNames) that a restarted broker
	// did not give its name back (another took it, or a policy keeps it).
	nameNotRestored chan error
	ownsNames       bool

	// onLost, if set, is told of lost messages instead of stderr (bus
	// monitor shows them among the messages).
	onLost func(*clientlib.LostError)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	err := run(ctx, os.Args[1:], e)
	stop()
	e.report(err)
	os.Exit(cli.ExitCode(err))
}

// report prints why the command failed, if it did, once, and for a usage
// error where to read how to write it.
func (e *env) report(err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	fmt.Fprintln(e.stderr, errLine(err))
	switch {
	case cli.ExitCode(err) != cli.ExitUsage:
	case e.command == "", e.command == "help":
		fmt.Fprintln(e.stderr, "run 'bus help' for the commands")
	default:
		fmt.Fprintf(e.stderr, "run 'bus help %s' for its flags and arguments\n", e.command)
	}
}

// errLine is how an error shows on stderr: its text, prefixed "bus: " once.
// clientlib's errors start with "bus: " too, and the wrapping of one by
// another, or by bus itself, would repeat it inside the line.
func errLine(err error) string {
	msg := strings.NewReplacer(": bus: ", ": ", "(bus: ", "(").Replace(err.Error())
	if !strings.HasPrefix(msg, "bus: ") {
		msg = "bus: " + msg
	}
	return msg
}

// run runs the command args name. The connection flags may come before
// the command as well as among its own flags: both are parsed by the
// command's flag set, those before first.
func run(ctx context.Context, args []string, e *env) error {
	top := flag.NewFlagSet("bus", flag.ContinueOnError)
	e.connFlags(top)
	version := top.Bool("version", false, "") // by habit, for bus version
	connArgs, rest, err := cli.Leading(top, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeUsage(e.stdout)
		return err
	case err == nil && *version:
		e.command = "version"
		return versionFlags(top)(ctx, e, nil)
	case errors.Is(err, cli.ErrNotAFlag):
		return fmt.Errorf("%w: before the command go only the connection flags (-dir, -name, -socket, -trust, -no-reconnect); its own go after it", err)
	case err != nil:
		return err
	case len(rest) == 0:
		writeUsage(e.stderr)
		return cli.Usagef("no command given")
	}
	c := lookup(rest[0])
	if c == nil {
		return cli.Usagef("unknown command %q", rest[0])
	}
	e.command = c.name
	fs := flag.NewFlagSet("bus "+c.name, flag.ContinueOnError)
	e.connFlags(fs)
	runCmd := c.flags(fs)
	pos, err := cli.Parse(fs, append(connArgs, rest[1:]...))
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(e.stdout, c)
	}
	if err != nil {
		return err
	}
	return runCmd(ctx, e, pos)
}

// checkTimeout refuses a -timeout that would end the wait before it began.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return cli.Usagef("-timeout %v: must be positive, such as 5s or 500ms", d)
	}
	return nil
}

// socketPath is the socket the flags and environment name.
func (e *env) socketPath() string { return clientlib.ResolveSocket(e.socket, e.dir, e.name) }

// flush waits, for up to 5 seconds, until the broker has handled all c sent:
// after it, subscriptions are live and publications delivered.
func (e *env) flush(ctx context.Context, c *clientlib.Conn) error {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Flush(fctx)
}

// refusedAfterFlush flushes and returns the broker's refusal of anything c
// sent before, if it refused something: a denied publish or subscription
// makes the command fail.
func (e *env) refusedAfterFlush(ctx context.Context, c *clientlib.Conn) error {
	if err := e.flush(ctx, c); err != nil {
		return err
	}
	return c.LastRefusal()
}

// connect connects to the bus the flags name, waiting at most 5 seconds.
// If the connection drops it reconnects, saying so on stderr, unless
// -no-reconnect; e.closed is closed once it has ended for good.
func (e *env) connect(ctx context.Context) (*clientlib.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	wait := clientlib.WithNoWait() // a command fails at once if the bus is not up
	if e.waitsForBus {
		cctx, wait = ctx, nil // until interrupted
		if info, err := unixsock.ProbeBus(e.socketPath()); err == nil && !info.Alive {
			fmt.Fprintf(e.stderr, "bus: waiting for a bus at %s (start busd for it, or ctrl-C to give up)\n", e.socketPath())
		}
	}
	e.closed = make(chan struct{})
	closed := e.closed
	e.refused = make(chan struct{})
	e.nameNotRestored = make(chan error, 1)
	var reconnect clientlib.Option
	if e.noReconnect {
		reconnect = clientlib.WithNoReconnect()
	}
	c, err := clientlib.Connect(cctx,
		reconnect,
		clientlib.WithDisconnectHandler(func(_ *clientlib.Conn, err error) {
			fmt.Fprintf(e.stderr, "bus: connection lost (%s); reconnecting\n", strings.TrimPrefix(err.Error(), "bus: "))
		}),
		clientlib.WithReconnectHandler(func(c *clientlib.Conn, r clientlib.Restored) {
			// Said once the subscriptions are in place at the broker (a
			// refusal comes before the flush's answer, and the command
			// fails with it instead); if the connection drops again
			// first, its own line says so.
			if e.flush(ctx, c) == nil && !e.wasRefused() && c.LastRefusal() == e.handledRefusal {
				fmt.Fprintf(e.stderr, "bus: reconnected to %s, %d subscriptions restored\n", e.socketPath(), r.Subscriptions+r.Listeners)
			}
		}),
		clientlib.WithClosedHandler(func(*clientlib.Conn) { close(closed) }),
		clientlib.WithSocket(e.socketPath()),
		clientlib.WithName("bus-cli"),
		wait,
		clientlib.WithTrustedUIDs(e.trust...),
		// Errors no call returns, lost messages among them (a
		// *clientlib.LostError says how many, where and why).
		clientlib.WithErrorHandler(func(c *clientlib.Conn, sub *clientlib.Subscription, err error) {
			var se *clientlib.ServerError
			refusal := errors.As(err, &se) && !se.Code.Fatal()
			if refusal {
				e.handledRefusal = err
			}
			if refusal && sub != nil {
				// The command fails with it (sub and monitor through
				// e.refused, reply through Next): said then, once.
				e.refusedOnce.Do(func() { e.refusal = err; close(e.refused) })
				return
			}
			if e.checksRefusals && refusal {
				return
			}
			if e.ownsNames && (errors.Is(err, clientlib.ErrNameNotRestored) || errors.Is(err, clientlib.ErrNameForbidden)) {
				select {
				case e.nameNotRestored <- err: // own says it, or fails with it
				default:
				}
				return
			}
			if err == c.Err() {
				return // why the connection ended: the command fails with it
			}
			var le *clientlib.LostError
			if e.onLost != nil && errors.As(err, &le) {
				e.onLost(le)
				return
			}
			fmt.Fprintln(e.stderr, errLine(err))
		}))
	if errors.Is(err, clientlib.ErrNoBus) || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		err = e.noBus(err)
	}
	return c, err
}

// wasRefused reports whether the broker has refused a subscription of the
// command.
func (e *env) wasRefused() bool {
	select {
	case <-e.refused:
		return true
	default:
		return false
	}
}

// subscriptionRefused is the error a command that waits for messages ends
// with when the broker has refused one of its subscriptions.
func (e *env) subscriptionRefused() error {
	return fmt.Errorf("the bus refused a subscription: %w", e.refusal)
}

// noBus says that nothing serves the bus the flags name, and what to do,
// in place of clientlib's advice, which is for programs.
func (e *env) noBus(err error) error {
	why := "no socket there"
	if errors.Is(err, syscall.ECONNREFUSED) {
		why = "its socket refuses connections: the broker that made it is gone"
	}
	return fmt.Errorf("%w at %s (%s): start busd for it, or point -dir, -name or -socket at a running bus ('bus ls' lists them)",
		clientlib.ErrNoBus, e.socketPath(), why)
}
