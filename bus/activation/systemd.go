package activation

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// startUnit asks systemd to start p's unit: systemctl [--user] start
// --no-block UNIT, with busd's own environment (systemctl --user finds
// the user's manager through XDG_RUNTIME_DIR). It returns once systemd
// has queued the job, or why it would not: the unit's own failure later
// is not systemctl's to report.
func (a *Activator) startUnit(p *proc) error {
	unit := p.e.svc.SystemdUnit
	path := a.cfg.Systemctl
	if path == "" {
		var err error
		if path, err = exec.LookPath("systemctl"); err != nil {
			return fmt.Errorf("systemd_unit %s: %w", unit, err)
		}
	}
	args := []string{"start", "--no-block", unit}
	if a.cfg.Systemd == ScopeUser {
		args = append([]string{"--user"}, args...)
	}
	out := &capped{max: 512}
	cmd := exec.CommandContext(a.ctx, path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	a.log.Info("asking systemd to start the service's unit", "service", p.e.svc.Name, "unit", unit, "scope", string(a.cfg.Systemd))
	markCloseOnExec()
	err := cmd.Run()
	switch {
	case a.ctx.Err() != nil:
		return errAbandoned
	case err == nil:
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg != "" {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(b []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(b[:min(room, len(b))])
	}
	return len(b), nil
}
