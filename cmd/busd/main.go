// Command busd is the busd broker: a message bus for the processes of one
// machine, listening on a Unix socket.
//
//	busd [-dir DIR] [-name N] [-socket PATH] [-mode 0600] [-log-level info]
//
// It listens on DIR/N.sock, where DIR is $BUSD_DIR, else
// $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID, and N is "default"; -socket or
// $BUSD_SOCKET names the socket directly. Started by systemd socket
// activation it serves the sockets it is given instead. It stops cleanly on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/busd/busd/bus"
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
	maxPayload := fs.Uint("max-payload", uint(bus.DefaultConfig().Limits.MaxPayload), "largest payload in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
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

	cfg := bus.DefaultConfig()
	cfg.Logger = log
	cfg.Limits.MaxPayload = uint32(*maxPayload)
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
