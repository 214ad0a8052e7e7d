package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
)

// command is one subcommand: its flags are registered on fs, then run gets
// the remaining arguments. The usage, `bus help` and the completion
// scripts are all made from the table of them.
type command struct {
	name  string
	args  string // the synopsis after the name
	doc   string // what it does, lines of the usage
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
	// choices are the words its first argument may be, for completion.
	choices []string
}

// commands is filled in by init: help, completion and ls read it, and a
// variable may not depend on itself through its initializer.
var commands []*command

func init() {
	commands = []*command{
		{"pub", pubArgs, `publish DATA to TOPIC, or each line of stdin without DATA, or with
-file the content of PATH as one payload of any size up to the bus's
max_fd_payload (a large one in a sealed memfd that the kernel fills from
the file and the bus passes on unread); -retain asks the bus to keep it
as TOPIC's current value (empty DATA clears it)`, pubFlags, nil},
		{"sub", subArgs, `print the messages published to topics matching the patterns;
messages lost because it fell behind are reported on stderr; -retained
prints the values the bus retains for them first, then the updates;
-o DIR writes each payload to a file of its own in DIR instead,
DIR/000001-TOPIC, DIR/000002-TOPIC, ... (one in a memfd copied by the
kernel; a topic too long for a file name cut short), and prints each
file's path before the message's line`, subFlags, nil},
		{"monitor", monitorArgs, `watch the messages published to topics matching PATTERN (default >)
without taking part: requests nobody serves still fail at once, queue
groups and streams lose nothing to it, it gets no descriptors (fds= says
how many there were) and the bus never waits for it; what it misses is
shown as a line. Other connections' replies only with the policy's
monitor verb (docs/SECURITY.md)`, monitorFlags, nil},
		{"req", reqArgs, `send DATA, or all of stdin, as a request to TOPIC and print the
reply's payload; fail at once if nobody serves TOPIC, or after D
(default 5s) without a reply; -v prints the reply's headers to stderr`, reqFlags, nil},
		{"reply", replyArgs, `answer each request to PATTERN with DATA, or with the stdout of CMD
(run by sh -c, the request's payload on its stdin; if CMD fails the
error goes to stderr and its stdout is still sent)`, replyFlags, nil},
		{"stream", streamArgs, `listen: take one direct stream dialled to NAME; dial: open one
(fail at once if nobody listens, or after D); either way stdin goes
to the stream and the stream to stdout, peer to peer. write: send
stdin as a stream on TOPIC; read: print the stream on TOPIC to its end`, streamFlags, streamModes},
		{"whois", whoisArgs, `print who holds connection CONNID (the conn= sub prints): its pid, uid,
gid, name and start, and its executable, verified through a pidfd;
fail if it has closed or its process has exited`, whoisFlags, nil},
		{"ls", lsArgs, `list the buses of the directory (-dir), or the bus of -socket: name,
socket, alive or stale (by its lock), and for a live one the broker's
pid, uptime and connections ("?" if its policy does not let you ask,
and why on stderr); -json prints one object a line, with its error`, lsFlags, nil},
		{"stat", statArgs, `show the connections of the bus, refreshed every D (-interval) until
ctrl-C, as top does: pid, uid, subscriptions, messages in and out and
their rates, bytes and descriptors queued, drops, idle time and name;
-subs lists the patterns subscribed to instead. A uid other than the
broker's sees its own connections; -once prints one sample, -json one
object a line`, statFlags, nil},
		{"names", namesArgs, `list the well-known names: each name, its owner's connection, pid and
uid, and the connections queued for it, next owner first; -json prints
one object a line`, namesFlags, nil},
		{"own", ownArgs, `hold the well-known name NAME while running: print "owner NAME" each
time this process becomes its owner; wait in its queue if another owns
it (unless -no-queue); -replace takes it from an owner that allows
replacement (-allow-replacement); ctrl-C or SIGTERM releases it`, ownFlags, nil},
		{"help", "[COMMAND]", `print this, or what COMMAND does and its flags`, helpFlags, nil},
		{"version", "", `print bus's version and the VCS revision it was built from (also -version)`, versionFlags, nil},
		{"completion", "bash|zsh|fish", `print a completion script for the shell, to load with
source <(bus completion bash) in ~/.bashrc, or to install in its
completions directory`, completionFlags, shells},
	}
	help := lookup("help")
	for _, c := range commands {
		if c != help {
			help.choices = append(help.choices, c.name)
		}
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

var streamModes = []string{"listen", "dial", "write", "read"}

// usageError is the error of a command given the wrong arguments.
func usageError(c *command) error {
	return cli.Usagef("usage: %s", strings.TrimSpace("bus "+c.name+" "+c.args))
}

// connFlags registers the flags every command takes, before or after it.
func (e *env) connFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.dir, "dir", "", "the bus directory `DIR` (default $BUSD_DIR, else $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID)")
	fs.StringVar(&e.name, "name", clientlib.DefaultBus, "the bus `NAME`: its socket is DIR/NAME.sock")
	fs.StringVar(&e.socket, "socket", "", "the bus's socket `PATH`, overriding $BUSD_SOCKET, -dir and -name")
	fs.Var(&e.trust, "trust", "trust the buses of these `UIDS`, comma-separated, besides yours and root's")
	fs.BoolVar(&e.noReconnect, "no-reconnect", false, "end, failing, when the connection to the bus ends, instead of reconnecting and carrying on")
}

const usageHead = "usage: bus [connection flags] COMMAND [flags] [ARGS]\n\ncommands:\n"

// usageNotes follow the list of commands.
const usageNotes = `
Flags go before or after the arguments; an argument that starts with '-'
goes after --, as in: bus pub temp -- -5.

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
`

const usageEnv = `
environment:
  BUSD_SOCKET      the bus's socket, unless -socket names one (it wins over
                   -dir and -name)
  BUSD_DIR         the bus directory, unless -dir names one
  XDG_RUNTIME_DIR  without $BUSD_DIR, the bus directory is $XDG_RUNTIME_DIR/busd

exit status:
  0  done (sub, reply and stream also end with 0 on ctrl-C)
  1  failed: refused by the bus, no reply in time, the connection ended
     under -no-reconnect, a restarted bus refused to restore what sub,
     monitor, reply, stream listen or own had, and so on; stderr says why
  2  the command line cannot be run as written: stderr says what is wrong

Run 'bus help COMMAND' for a command's flags.
`

// writeUsage writes the usage of bus: its commands, the flags they share
// and the environment.
func writeUsage(w io.Writer) {
	io.WriteString(w, usageHead)
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n%s", strings.TrimSpace(c.name+" "+c.args), indent(c.doc))
	}
	io.WriteString(w, usageNotes)
	io.WriteString(w, "\nconnection flags, before or after the command:\n")
	writeFlags(w, (&env{}).connFlags)
	io.WriteString(w, usageEnv)
}

// writeHelp writes what c does and its flags.
func writeHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: bus %s\n\n%s", strings.TrimSpace(c.name+" "+c.args), indent(c.doc))
	var own strings.Builder
	writeFlags(&own, func(fs *flag.FlagSet) { c.flags(fs) })
	if own.Len() > 0 {
		fmt.Fprintf(w, "\nflags (before or after the arguments; '--' ends them):\n%s", own.String())
	}
	io.WriteString(w, "\nconnection flags (run 'bus help' for the environment they default to):\n")
	writeFlags(w, (&env{}).connFlags)
}

// writeFlags writes the flags register adds to a flag set, as flag shows them.
func writeFlags(w io.Writer, register func(*flag.FlagSet)) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	register(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func indent(doc string) string {
	return "        " + strings.ReplaceAll(doc, "\n", "\n        ") + "\n"
}

func helpFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
		switch {
		case len(args) == 0:
			writeUsage(e.stdout)
		case len(args) == 1 && lookup(args[0]) != nil:
			writeHelp(e.stdout, lookup(args[0]))
		case len(args) == 1:
			return cli.Usagef("no command %q", args[0])
		default:
			return usageError(lookup("help"))
		}
		return nil
	}
}

func versionFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usageError(lookup("version"))
		}
		_, err := fmt.Fprintln(e.stdout, cli.Version("bus"))
		return err
	}
}
