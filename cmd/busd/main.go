// Command busd is the busd broker: a message bus for the processes of one
// machine, listening on a Unix socket.
//
//	busd [-dir DIR] [-name N] [-socket PATH] [-mode 0600] [-group G]
//	     [-allow-uid UID,...] [-allow-gid GID,...] [-policy FILE]
//	     [-log-level info] [-log-format text|json] [-metrics ADDR]
//	     [-services DIR] [limits]
//	busd -check-config FILE
//	busd -version
//
// It listens on DIR/N.sock, where DIR is $BUSD_DIR, else
// $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID, and N is "default"; -socket or
// $BUSD_SOCKET names the socket directly. Started by systemd socket
// activation it serves the sockets it is given instead, whose mode and group
// systemd sets (SocketMode=, SocketGroup=), and never removes them. With
// NOTIFY_SOCKET set it tells systemd READY=1 once it serves, and STOPPING=1
// when it begins to stop (docs/SYSTEMD.md).
//
// On SIGINT or SIGTERM it stops accepting, removes its socket and releases
// its lock (a successor may start from then on), sends every client
// everything queued for it and then ERR shutting down, waits up to
// -shutdown-timeout for them to take it, and exits 0 (docs/PROTOCOL.md,
// section 5, "When the broker stops"). A second busd for a bus that is
// served exits at once with status 1, naming the socket and the live
// broker's pid.
//
// Who may connect: the kernel lets a process connect(2) if the socket's
// mode allows it (-mode, 0600 by default: only busd's user) and it may
// search the socket's directory. -group G (a name or a numeric gid) gives
// the socket to group G, so that -mode 0660 admits G's members; busd then
// creates the directory 0750 for G, or requires an existing one to be
// searchable by G, and its own user must be a member of G (or root). The
// members need every directory above it to be searchable too, and, unless
// busd runs as root, to trust busd's user (bus -trust UID). Then -allow-uid
// and -allow-gid (numeric ids only) refuse, as soon as it is accepted and
// before it costs anything, every connection whose uid is not listed and
// none of whose groups, primary or supplementary, is; with neither, everyone
// the kernel lets connect is served. docs/SECURITY.md, "Who may connect",
// has the whole order.
//
// Who may do what: -policy FILE loads an access-control policy (rules of
// allow or deny, for uids, gids or anyone, on publish, subscribe, reply,
// listen, dial and monitor, by topic pattern; first match wins), read again
// on SIGHUP; a file that no longer parses is logged and the policy in
// force stays. Without one, busd's own uid may do everything but monitor
// other connections' replies, and other uids nothing. -check-config FILE
// checks a policy file, names its first error with its line, and exits.
// docs/SECURITY.md, "Access control", describes the format.
//
// -services DIR starts services on demand: a request to a name nobody
// owns starts the service its file DIR/NAME.service names, a command
// busd runs (with a clean environment, its output to busd's log) or a
// systemd unit (-services-systemd user|system says which manager), and
// the request waits for the service to take the name, up to
// -activation-timeout. Only busd's user (or root) may write to DIR; it is
// read again when it changes, and on SIGHUP. docs/ACTIVATION.md has the
// format.
//
// Its limits default to what bus.DefaultConfig derives from the machine,
// after raising the soft RLIMIT_NOFILE to the hard limit; -max-pending,
// -max-memory, -max-conns, -write-timeout, -frame-timeout and -stall-budget
// change the common ones, and -max-fd-payload the largest payload sent in
// a sealed memfd (4 GiB; 0 takes none). docs/SECURITY.md says what each
// bounds.
//
// -metrics ADDR serves the broker's statistics (bus.Server.Stats) as
// OpenMetrics text at GET /metrics, on a Unix socket path (ADDR has a /;
// made like the bus's socket, 0600, or 0660 for -group) or a loopback
// address (127.0.0.1:PORT, [::1]:PORT; port 0 picks a free one, logged);
// any other address is a usage error, since the numbers tell who uses the
// bus. -log-format json logs JSON objects instead of key=value text.
//
// busd -h (or --help) prints the flags and the environment on stdout;
// busd -version prints the module version and the VCS revision of the
// build. Flags are read as bus reads them (internal/cli): a duration
// takes a unit (-write-timeout 10s). busd exits 0 once a signal has
// stopped it (and after -h, -version or a valid -check-config), 1 when it
// fails (another busd serves the bus, a listener failed, a policy does
// not parse), and 2 for a command line it cannot run as written: an
// unknown flag, a bad value, an argument.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/internal/cli"
	"github.com/busd/busd/unixsock"
)

func main() {
	err := run(os.Args[1:])
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "busd:", err)
		if cli.ExitCode(err) == cli.ExitUsage {
			fmt.Fprintln(os.Stderr, "run 'busd -h' for its flags")
		}
	}
	os.Exit(cli.ExitCode(err))
}

func run(args []string) error {
	fs := flag.NewFlagSet("busd", flag.ContinueOnError)
	dir := fs.String("dir", "", "socket directory (default $BUSD_DIR, else $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID)")
	name := fs.String("name", clientlib.DefaultBus, "bus name: the socket is DIR/NAME.sock")
	socket := fs.String("socket", "", "socket path, overriding -dir and -name (default $BUSD_SOCKET)")
	mode := fs.String("mode", "0600", "permissions of the socket file, in octal; 0660 with -group lets the group's members connect")
	group := fs.String("group", "", "group of the socket file, a `NAME` or numeric gid; busd's user must be in it (or root); a new socket directory is made 0750 for it, an existing one must let it search")
	allowUIDs := fs.String("allow-uid", "", "`LIST` of numeric uids, comma-separated, that may connect; with -allow-gid, either admits; with neither, everyone the socket lets in")
	allowGIDs := fs.String("allow-gid", "", "`LIST` of numeric gids, comma-separated, whose members (by primary or supplementary group) may connect")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text (key=value pairs, one line an event) or json (one JSON object a line)")
	metrics := fs.String("metrics", "", "serve OpenMetrics text at /metrics on `ADDR`: a Unix socket path (with a /; mode 0600, or 0660 for -group) or a loopback address, 127.0.0.1:PORT or [::1]:PORT (PORT 0: any free one, logged); off by default")
	policyFile := fs.String("policy", "", "access-control policy file, read again on SIGHUP (default: the broker's uid may do everything, others nothing)")
	checkConfig := fs.String("check-config", "", "check a policy file, say what its first error is, and exit")
	if _, err := bus.RaiseFDLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "busd: raising RLIMIT_NOFILE:", err) // the budgets follow the limit as it is
	}
	def := bus.DefaultConfig()
	maxPayload := fs.Uint("max-payload", uint(def.Limits.MaxPayload), "largest payload in bytes")
	maxFDPayload := fs.Int64("max-fd-payload", def.MaxFDPayload, "largest payload in bytes sent in a sealed memfd, which the broker passes on without copying; 0: it takes none (each uid may have the broker hold twice this at once, or a quarter of the machine's memory if more)")
	maxPending := fs.Int("max-pending", def.MaxPending, "bytes queued for one connection before its subscriptions lose messages")
	maxMemory := fs.Int64("max-memory", 0, fmt.Sprintf("bytes the broker holds for all clients together (0, the default: a quarter of the machine's memory, here %d)", def.MaxMemory))
	maxConns := fs.Int("max-conns", def.MaxConns, "connections served at once (one uid may hold half)")
	writeTimeout := fs.Duration("write-timeout", def.WriteTimeout, "how long a connection may accept nothing while output waits before it is closed")
	frameTimeout := fs.Duration("frame-timeout", def.FrameTimeout, "how long a frame may take to arrive whole")
	stallBudget := fs.Duration("stall-budget", def.StallBudget, "the longest a publisher waits for slow receivers per read batch")
	shutdownTimeout := fs.Duration("shutdown-timeout", 5*time.Second, "how long busd, told to stop, lets connections flush what it accepted before it closes them")
	acts := addActivationFlags(fs)
	version := fs.Bool("version", false, "print busd's version and the VCS revision it was built from, and exit")
	pos, err := cli.Parse(fs, args)
	if err == nil && len(pos) == 1 { // by habit, as for bus
		switch pos[0] {
		case "help":
			pos, err = nil, flag.ErrHelp
		case "version":
			pos, *version = nil, true
		}
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeUsage(os.Stdout, fs)
		return err
	case err != nil:
		return err
	case len(pos) > 0:
		return cli.Usagef("unexpected arguments %q: busd takes only flags", pos)
	case *version:
		_, err := fmt.Println(cli.Version("busd"))
		return err
	}
	if *checkConfig != "" {
		return checkPolicy(*checkConfig)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return cli.Usagef("-log-level %q: give debug, info, warn or error", *level)
	}
	newHandler, err := logHandler(*logFormat)
	if err != nil {
		return err
	}
	var maddr metricsAddr
	if *metrics != "" {
		if maddr, err = parseMetricsAddr(*metrics); err != nil {
			return &cli.UsageError{Err: err}
		}
		if err := checkMetricsPath(maddr, clientlib.ResolveSocket(*socket, *dir, *name)); err != nil {
			return &cli.UsageError{Err: err}
		}
	}
	perm, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || perm > 0o777 {
		return cli.Usagef("-mode %q is not an octal permission: give one such as 0600 (busd's user only) or 0660 (with -group)", *mode)
	}
	limits := limitFlags{*maxPayload, *maxPending, *maxConns, *maxMemory, *writeTimeout, *frameTimeout}
	if err := limits.check(); err != nil {
		return err
	}
	if *maxMemory == 0 {
		*maxMemory = def.MaxMemory
	}
	if *maxFDPayload < 0 {
		return cli.Usagef("-max-fd-payload %d is negative: give a size in bytes, or 0 to take no payloads in memfds", *maxFDPayload)
	}
	gid, err := parseGroup(*group)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	uids, err := parseIDs("allow-uid", *allowUIDs)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	gids, err := parseIDs("allow-gid", *allowGIDs)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	if err := acts.check(); err != nil {
		return err
	}
	log := slog.New(newHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	notify, err := newNotifier()
	if err != nil {
		log.Warn("not notifying systemd", "err", err)
	}

	cfg := def
	cfg.Logger = log
	cfg.Limits.MaxPayload = uint32(*maxPayload)
	cfg.MaxFDPayload = *maxFDPayload
	// A uid may have two of the largest held at once, as by default.
	cfg.User.FDPayload = max(cfg.User.FDPayload, cfg.MaxFDPayload, 2*min(cfg.MaxFDPayload, math.MaxInt64/2))
	cfg.MaxPending, cfg.MaxMemory, cfg.MaxConns = *maxPending, *maxMemory, *maxConns
	cfg.User.Conns = max(cfg.MaxConns/2, 1)
	cfg.WriteTimeout, cfg.FrameTimeout, cfg.StallBudget = *writeTimeout, *frameTimeout, *stallBudget
	cfg.ReclaimMemory = true
	cfg.AllowUIDs, cfg.AllowGIDs = uids, gids
	if *policyFile != "" {
		if cfg.Policy, err = policy.Load(*policyFile); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cli.Usagef("-policy %s: no such file", *policyFile)
			}
			return fmt.Errorf("the -policy file does not load: %w (fix it; busd -check-config %s checks it without starting)", err, *policyFile)
		}
	}
	if err := validateFlags(&cfg); err != nil {
		return err
	}
	// The collector works harder before the process outgrows what its
	// budgets allow, with room for the runtime and the broker's own state.
	debug.SetMemoryLimit(cfg.MaxMemory + runtimeHeadroom)
	opts := []unixsock.ListenOption{unixsock.WithMode(os.FileMode(perm))}
	if gid >= 0 {
		opts = append(opts, unixsock.WithGroup(gid))
	}
	// The signals are busd's before its socket is: one that comes the
	// moment clients can connect (a supervisor's SIGTERM, a SIGHUP right
	// after start) is handled, never the default action that kills.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	listeners, activated, err := listen(*socket, *dir, *name, opts)
	if err != nil {
		return err
	}
	// The services busd starts connect back to the socket it serves, which
	// it knows once it listens (systemd may pass it another than -socket's).
	act, err := acts.start(listeners[0].Path(), log)
	if err != nil {
		closeListeners(listeners)
		return err
	}
	defer closeActivator(act, *shutdownTimeout, log) // after the broker's shutdown
	// Only a started Activator: a nil *Activator would make a non-nil
	// interface value.
	if act != nil {
		cfg.Activator, cfg.ActivationTimeout = act, acts.activationTimeout()
	}
	srv, err := bus.NewServer(cfg)
	if err != nil {
		closeListeners(listeners)
		return err
	}
	if activated {
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "mode" || f.Name == "group" {
				log.Warn("ignored with socket activation: systemd sets the socket's permissions (SocketMode=, SocketGroup=)", "flag", "-"+f.Name)
			}
		})
	}
	if len(uids)+len(gids) > 0 {
		log.Info("allow-lists", "uids", *allowUIDs, "gids", *allowGIDs)
	}
	var reloads []func()
	if *policyFile != "" || act == nil { // else SIGHUP is for the services alone
		reloads = append(reloads, func() { reloadPolicy(srv, *policyFile, log) })
	}
	if act != nil {
		reloads = append(reloads, func() { reloadServices(act, log) })
	}
	go onHangup(ctx, hup, reloads...)
	// Serve runs until Shutdown: the order of the steps of stopping is
	// this function's (see shutdown), not left to each Serve's context.
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		attrs := []any{"socket", l.Path(), "pid", os.Getpid()}
		if activated {
			attrs = append(attrs, "name", l.Name()) // FileDescriptorName=
		}
		log.Info("listening", attrs...)
		go func() { errs <- srv.Serve(context.Background(), l) }()
	}
	var ms *metricsServer
	if *metrics != "" {
		if ms, err = startMetrics(maddr, srv, cfg, gid, log); err != nil {
			log.Error("the metrics endpoint cannot listen; shutting down") // main prints err
			shutdown(srv, nil, notify, *shutdownTimeout, log)
			for range listeners {
				<-errs
			}
			return err
		}
	}
	if err := notify.notify(notifyReady); err != nil {
		log.Warn("could not tell systemd busd is ready", "err", err)
	}
	var first error
	running := len(listeners)
	select {
	case <-ctx.Done():
		log.Info("shutting down", "signal", context.Cause(ctx))
	case first = <-errs: // a listener failed: stop the others
		running--
		log.Error("a listener failed; shutting down", "err", first)
	}
	shutdown(srv, ms, notify, *shutdownTimeout, log)
	for range running {
		if err := <-errs; err != nil && !errors.Is(err, bus.ErrServerClosed) && first == nil {
			first = err
		}
	}
	if errors.Is(first, bus.ErrServerClosed) {
		first = nil
	}
	log.Info("stopped")
	return first
}

// shutdown stops busd in this order (docs/PROTOCOL.md, section 5):
//
//  1. tell systemd busd is stopping (STOPPING=1); stop serving metrics,
//     alongside the steps below;
//  2. refuse connections still being accepted, and those waiting in the
//     accept queue of a socket busd made (ERR shutting down);
//  3. for each listener: remove the socket file (if busd made it and it is
//     still busd's), close the listening socket, release the lock; a
//     successor may start from here on, and no client can reach busd;
//  4. queue ERR shutting down to every connection after everything queued
//     for it, and stop reading from it;
//  5. wait up to timeout for every connection to have written all that
//     and closed; close those left when it ends;
//  6. let the descriptors busd still holds be closed, within what is left
//     of timeout.
//
// Steps 2 to 6 are bus.Server.Shutdown.
func shutdown(srv *bus.Server, ms *metricsServer, notify *notifier, timeout time.Duration, log *slog.Logger) {
	if err := notify.notify(notifyStopping); err != nil {
		log.Warn("could not tell systemd busd is stopping", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The metrics endpoint stops in parallel: a scrape under way must not
	// take the time the bus's connections have to flush.
	metricsDone := make(chan struct{})
	go func() {
		ms.shutdown(ctx, log)
		close(metricsDone)
	}()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("connections closed before they had flushed", "err", err, "timeout", timeout)
	}
	<-metricsDone
}

// logHandler returns the constructor of the slog handler -log-format
// names.
func logHandler(format string) (func(io.Writer, *slog.HandlerOptions) slog.Handler, error) {
	switch format {
	case "text":
		return func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewTextHandler(w, o) }, nil
	case "json":
		return func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewJSONHandler(w, o) }, nil
	}
	return nil, cli.Usagef("-log-format %q: give text or json", format)
}

// runtimeHeadroom is what the process may use beyond the memory its
// budgets count: goroutine stacks, the runtime, the index and caches.
const runtimeHeadroom = 256 << 20

// listen returns the listeners systemd passed, and true, or else one on
// the resolved socket path, made with opts.
func listen(socket, dir, name string, opts []unixsock.ListenOption) ([]*unixsock.Listener, bool, error) {
	activated, err := unixsock.ActivationListeners(bus.ConnOptions())
	if err != nil {
		return nil, false, err
	}
	if len(activated) > 0 {
		return activated, true, nil
	}
	l, err := bus.Listen(clientlib.ResolveSocket(socket, dir, name), opts...)
	if err != nil {
		return nil, false, err
	}
	return []*unixsock.Listener{l}, false, nil
}

// closeListeners closes listeners busd will not serve: it removes the
// sockets it made, and releases their locks.
func closeListeners(listeners []*unixsock.Listener) {
	for _, l := range listeners {
		l.Close()
	}
}
