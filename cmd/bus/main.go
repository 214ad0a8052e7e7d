// Command bus talks to a busd message bus from the shell.
//
//	bus pub [-count N] [-attach FILE]... [-H key=value]... [-json] TOPIC [DATA]
//	bus sub [-count N] [-raw | -json] [-cat-fds] [-queue GROUP] PATTERN...
//	bus req [-timeout D] [-H key=value]... [-json] [-v] TOPIC [DATA]
//	bus reply [-count N] [-queue GROUP] [-json] [-exec CMD] PATTERN [DATA]
//	bus stream [-timeout D] listen|dial NAME
//	bus stream write|read TOPIC
//	bus whois [-timeout D] CONNID
//	bus ls [-json] [-timeout D]
//
// pub sends DATA, or each line of stdin; sub prints what arrives (and
// reports on stderr what it lost by falling behind); req sends one
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
// policy or -trust does not let bus ask).
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
// Every subcommand takes -dir, -name and -socket, and finds the bus the way
// busd does: -socket or $BUSD_SOCKET, else DIR/NAME.sock with DIR from
// $BUSD_DIR, $XDG_RUNTIME_DIR/busd or /tmp/busd-$UID. -trust UID,... also
// accepts a bus run by those uids (besides yours and root's), and
// -no-reconnect makes a command fail when its connection drops rather than
// reconnect.
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
	"github.com/busd/busd/unixsock"
)

// The synopsis of each command, shared by the usage text and the errors
// that show it. Keep the package comment in step.
const (
	pubArgs    = "[-count N] [-attach FILE]... [-H key=value]... [-json] TOPIC [DATA]"
	subArgs    = "[-count N] [-raw | -json] [-cat-fds] [-queue GROUP] PATTERN..."
	reqArgs    = "[-timeout D] [-H key=value]... [-json] [-v] TOPIC [DATA]"
	replyArgs  = "[-count N] [-queue GROUP] [-json] [-exec CMD] PATTERN [DATA]"
	streamArgs = "[-timeout D] listen|dial NAME | write|read TOPIC"
	whoisArgs  = "[-timeout D] CONNID"
	lsArgs     = "[-json] [-timeout D]"
)

const usage = `usage: bus COMMAND [flags] ARGS

commands:
  pub ` + pubArgs + `
        publish DATA to TOPIC, or each line of stdin without DATA
  sub ` + subArgs + `
        print the messages published to topics matching the patterns;
        messages lost because it fell behind are reported on stderr
  req ` + reqArgs + `
        send DATA, or all of stdin, as a request to TOPIC and print the
        reply's payload; fail at once if nobody serves TOPIC, or after D
        (default 5s) without a reply; -v prints the reply's headers to stderr
  reply ` + replyArgs + `
        answer each request to PATTERN with DATA, or with the stdout of CMD
        (run by sh -c, the request's payload on its stdin; if CMD fails the
        error goes to stderr and its stdout is still sent)
  stream ` + streamArgs + `
        listen: take one direct stream dialled to NAME; dial: open one
        (fail at once if nobody listens, or after D); either way stdin goes
        to the stream and the stream to stdout, peer to peer. write: send
        stdin as a stream on TOPIC; read: print the stream on TOPIC to its end
  whois ` + whoisArgs + `
        print who holds connection CONNID (the conn= sub prints): its pid, uid,
        gid, name and start, and its executable, verified through a pidfd;
        fail if it has closed or its process has exited
  ls ` + lsArgs + `
        list the buses of the directory (-dir), or the bus of -socket: name,
        socket, alive or stale (by its lock), and for a live one the broker's
        pid, uptime and connections ("?" if its policy does not let you ask,
        and why on stderr); -json prints one object a line, with its error

-H adds a header to every message sent (repeat a key to send it twice).
-json: DATA (or each input) is JSON, sent as msgpack; req and reply print
payloads received as one line of JSON each, and sub prints each message as
a JSON object a line: topic, origin, reply, headers as [key, value] pairs in
order, fds, and the payload as value (msgpack decoded), text or base64.
-queue GROUP: each message goes to one member of the group. bus reply
-count N answers what was already on its way to it before it leaves; bus
sub, and either on ctrl-C, drop it (programs that must not lose any leave
with Subscription.Drain, as examples/workers does).

If the connection to the bus drops (busd restarted, say), a command
reconnects and carries on, saying so on stderr; messages published while
it was away are not delivered to it. -no-reconnect makes it fail instead.

Every command takes -dir, -name or -socket to choose the bus, and -trust
UID,... to accept a bus run by another user (yours and root's are trusted).

Run 'bus COMMAND -h' for a command's flags.
`

// command is one subcommand: its flags are registered on fs, then run gets
// the remaining arguments.
type command struct {
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

var commands = map[string]command{
	"pub":    {pubFlags},
	"sub":    {subFlags},
	"req":    {reqFlags},
	"reply":  {replyFlags},
	"stream": {streamFlags},
	"whois":  {whoisFlags},
	"ls":     {lsFlags},
}

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
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, errLine(err))
		}
		os.Exit(1)
	}
}

// errLine is how an error shows on stderr: its text, prefixed "bus: " once.
func errLine(err error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, "bus: ") {
		msg = "bus: " + msg
	}
	return msg
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
	fs.Var(&e.trust, "trust", "comma-separated uids whose buses to trust besides yours and root's")
	fs.BoolVar(&e.noReconnect, "no-reconnect", false, "end, failing, when the connection to the bus ends, instead of reconnecting and carrying on")
	runCmd := cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	return runCmd(ctx, e, fs.Args())
}

// checkTimeout refuses a -timeout that would end the wait before it began.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("-timeout %v: must be positive, such as 5s or 500ms", d)
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
			// Said once the subscriptions are in place at the broker; if
			// the connection drops again first, its own line says so.
			if e.flush(ctx, c) == nil {
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
		clientlib.WithErrorHandler(func(_ *clientlib.Conn, _ *clientlib.Subscription, err error) {
			var se *clientlib.ServerError
			if e.checksRefusals && errors.As(err, &se) && !se.Code.Fatal() {
				return
			}
			fmt.Fprintln(e.stderr, errLine(err))
		}))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		err = fmt.Errorf("%w (is busd running? start it with 'busd' or 'make run', or point -dir, -name or -socket at a running bus)", err)
	}
	return c, err
}
