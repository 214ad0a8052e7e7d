package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/activation"
	"github.com/busd/busd/internal/cli"
)

// Activation: -services DIR starts the services of names nobody owns
// (docs/ACTIVATION.md). Off by default: busd runs nothing it is not told
// to run. The directory for a user's bus would be
// $XDG_CONFIG_HOME/busd/services (~/.config/busd/services), and
// /etc/busd/services for a system bus; busd reads neither unless given.

// The broker calls the Activator through bus.Activator.
var _ bus.Activator = (*activation.Activator)(nil)

// defaultActivationTimeout is how long the broker holds requests for a
// name whose service is starting (bus.Config.ActivationTimeout's default).
const defaultActivationTimeout = 25 * time.Second

// activationFlags are the flags of activation.
type activationFlags struct {
	dir     *string
	timeout *time.Duration
	systemd *string
}

// addActivationFlags defines the flags of activation on fs.
func addActivationFlags(fs *flag.FlagSet) *activationFlags {
	return &activationFlags{
		dir: fs.String("services", "", "start services on demand from the service files in `DIR` (docs/ACTIVATION.md): a request to a name nobody owns starts its service; "+
			"only busd's user (or root) may write to DIR; read again when it changes and on SIGHUP (default: none; a user's bus would use ~/.config/busd/services)"),
		timeout: fs.Duration("activation-timeout", defaultActivationTimeout, "how long requests to a name whose service is starting wait for it to take the name, before they are answered no-responders"),
		systemd: fs.String("services-systemd", "", "the systemd manager that starts a service file's systemd_unit, `SCOPE` user (systemctl --user) or system (default: system when busd runs as root, else user)"),
	}
}

// check checks the flags' values, before busd listens.
func (f *activationFlags) check() error {
	switch {
	case *f.timeout <= 0:
		return cli.Usagef("-activation-timeout %v: give a positive duration", *f.timeout)
	case *f.systemd != "" && *f.systemd != string(activation.ScopeUser) && *f.systemd != string(activation.ScopeSystem):
		return cli.Usagef("-services-systemd %q: give user or system", *f.systemd)
	case *f.dir == "":
		return nil
	}
	abs, err := filepath.Abs(*f.dir)
	if err != nil {
		return cli.Usagef("-services: %w", err)
	}
	*f.dir = abs
	return nil
}

// start returns the Activator of -services, whose services are told the
// bus is at socket, or nil without -services. It fails if the directory
// cannot be read or others may write to it.
func (f *activationFlags) start(socket string, log *slog.Logger) (*activation.Activator, error) {
	if *f.dir == "" {
		return nil, nil
	}
	act, err := activation.New(activation.Config{
		Dir:     *f.dir,
		Socket:  socket,
		Logger:  log,
		Systemd: activation.Scope(*f.systemd),
	})
	if err != nil {
		return nil, fmt.Errorf("-services: %w", err)
	}
	log.Info("activation", "services", *f.dir, "count", len(act.Services()), "timeout", *f.timeout)
	return act, nil
}

// activationTimeout is -activation-timeout, for bus.Config.
func (f *activationFlags) activationTimeout() time.Duration { return *f.timeout }

// reloadServices reads the services directory again, on SIGHUP (its
// watch reads it on every change; SIGHUP is for when the watch cannot be
// set, or to be sure).
func reloadServices(act *activation.Activator, log *slog.Logger) {
	if err := act.Reload(); err == nil {
		log.Info("services directory read again", "services", len(act.Services()))
	}
}

// closeActivator stops activation once the broker has stopped: the
// services it started run on (docs/ACTIVATION.md, "When busd stops").
func closeActivator(act *activation.Activator, timeout time.Duration, log *slog.Logger) {
	if act == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := act.Close(ctx); err != nil {
		log.Warn("activation did not stop in time", "err", err)
	}
}
