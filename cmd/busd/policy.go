package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
)

// checkPolicy is -check-config: it parses the file and reports its first
// error, with its line, or what the file holds.
func checkPolicy(path string) error {
	p, err := policy.Load(path)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d rules, valid; after them every policy ends with the default rules (the broker's uid may do everything but monitor, other uids nothing)\n", path, len(p.Rules))
	return nil
}

// onHangup calls each of reloads on each SIGHUP, as hup delivers them,
// until ctx ends: one signal reads again everything busd reads from files.
func onHangup(ctx context.Context, hup <-chan os.Signal, reloads ...func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		for _, reload := range reloads {
			reload()
		}
	}
}

// reloadPolicy reads the policy file again. A file that no longer parses
// leaves the policy as it was, and says why in the log; with no file
// there is nothing to reload.
func reloadPolicy(srv *bus.Server, path string, log *slog.Logger) {
	if path == "" {
		log.Warn("SIGHUP: no -policy file to reload")
		return
	}
	p, err := policy.Load(path)
	if err != nil {
		log.Error("SIGHUP: policy not reloaded; the one in force stays", "err", err)
		return
	}
	srv.SetPolicy(p)
	log.Info("policy reloaded", "file", path, "rules", len(p.Rules))
}
