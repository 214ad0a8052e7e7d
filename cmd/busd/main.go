// Command busd is the busd broker: a message bus for the processes of one
// machine, listening on a Unix socket.
//
//	busd [-dir DIR] [-name N] [-socket PATH] [-mode 0600] [-log-level info] [limits]
//
// It listens on DIR/N.sock, where DIR is $BUSD_DIR, else
// $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID, and N is "default"; -socket or
// $BUSD_SOCKET names the socket directly. Started by systemd socket
// activation it serves the sockets it is given instead. It stops cleanly on
// SIGINT or SIGTERM.
//
// Its limits default to what bus.DefaultConfig derives from the machine,
// after raising the soft RLIMIT_NOFILE to the hard limit; -max-pending,
// -max-memory, -max-conns, -write-timeout, -frame-timeout and -stall-budget
// change the common ones. docs/SECURITY.md says what each bounds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/clientlib"
	"github.com/busd/busd/unixsock"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "busd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("busd", flag.ContinueOnError)
	dir := fs.String("dir", "", "socket directory (default $BUSD_DIR, else $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID)")
	name := fs.String("name", clientlib.DefaultBus, "bus name: the socket is DIR/NAME.sock")
	socket := fs.String("socket", "", "socket path, overriding -dir and -name (default $BUSD_SOCKET)")
	mode := fs.String("mode", "0600", "permissions of the socket file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	policyFile := fs.String("policy", "", "access-control policy file, read again on SIGHUP (default: the broker's uid may do everything, others nothing)")
	checkConfig := fs.String("check-config", "", "check a policy file, say what its first error is, and exit")
	if _, err := bus.RaiseFDLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "busd: raising RLIMIT_NOFILE:", err) // the budgets follow the limit as it is
	}
	def := bus.DefaultConfig()
	maxPayload := fs.Uint("max-payload", uint(def.Limits.MaxPayload), "largest payload in bytes")
	maxPending := fs.Int("max-pending", def.MaxPending, "bytes queued for one connection before its subscriptions lose messages")
	maxMemory := fs.Int64("max-memory", def.MaxMemory, "bytes the broker holds for all clients together (default: a quarter of the machine's memory)")
	maxConns := fs.Int("max-conns", def.MaxConns, "connections served at once (one uid may hold half)")
	writeTimeout := fs.Duration("write-timeout", def.WriteTimeout, "how long a connection may accept nothing while output waits before it is closed")
	frameTimeout := fs.Duration("frame-timeout", def.FrameTimeout, "how long a frame may take to arrive whole")
	stallBudget := fs.Duration("stall-budget", def.StallBudget, "the longest a publisher waits for slow receivers per read batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *checkConfig != "" {
		return checkPolicy(*checkConfig)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	perm, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || perm > 0o777 {
		return fmt.Errorf("-mode %q is not an octal permission", *mode)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	cfg := def
	cfg.Logger = log
	cfg.Limits.MaxPayload = uint32(*maxPayload)
	cfg.MaxPending, cfg.MaxMemory, cfg.MaxConns = *maxPending, *maxMemory, *maxConns
	cfg.User.Conns = max(cfg.MaxConns/2, 1)
	cfg.WriteTimeout, cfg.FrameTimeout, cfg.StallBudget = *writeTimeout, *frameTimeout, *stallBudget
	cfg.ReclaimMemory = true
	if *policyFile != "" {
		if cfg.Policy, err = policy.Load(*policyFile); err != nil {
			return err
		}
	}
	// The collector works harder before the process outgrows what its
	// budgets allow, with room for the runtime and the broker's own state.
	debug.SetMemoryLimit(cfg.MaxMemory + runtimeHeadroom)
	srv, err := bus.NewServer(cfg)
	if err != nil {
		return err
	}
	listeners, err := listen(*socket, *dir, *name, os.FileMode(perm))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go reloadOnHangup(ctx, srv, *policyFile, log)
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		log.Info("listening", "socket", l.Path(), "pid", os.Getpid())
		go func() { errs <- srv.Serve(ctx, l) }()
	}
	var first error
	for range listeners {
		if err := <-errs; err != nil && !errors.Is(err, bus.ErrServerClosed) && first == nil {
			first = err
			stop() // one listener failing stops the others
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	log.Info("stopped")
	return first
}

// runtimeHeadroom is what the process may use beyond the memory its
// budgets count: goroutine stacks, the runtime, the index and caches.
const runtimeHeadroom = 256 << 20

// listen returns the listeners systemd passed, or else one on the resolved
// socket path.
func listen(socket, dir, name string, mode os.FileMode) ([]*unixsock.Listener, error) {
	activated, err := unixsock.ActivationListeners(bus.ConnOptions())
	if err != nil {
		return nil, err
	}
	if len(activated) > 0 {
		return activated, nil
	}
	l, err := bus.Listen(clientlib.ResolveSocket(socket, dir, name), unixsock.WithMode(mode))
	if err != nil {
		return nil, err
	}
	return []*unixsock.Listener{l}, nil
}
