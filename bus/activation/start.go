package activation

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// errAbandoned is how a start ends that Close stopped following.
var errAbandoned = errors.New("activation: abandoned by Close")

// outputGrace bounds how long the end of a process waits for its output
// to be logged: a process it started may hold its pipes open for longer.
const outputGrace = 2 * time.Second

// run starts p's service and follows it to its end, or until Close.
func (a *Activator) run(p *proc, ready <-chan struct{}) {
	defer a.wg.Done()
	<-ready
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	var err error
	switch {
	case closed: // Close came first: start nothing
		err = errAbandoned
	case p.e.svc.SystemdUnit != "":
		err = a.startUnit(p)
	default:
		err = a.runProcess(p)
	}
	a.finish(p, err)
}

// runProcess starts p's command, logs its output, and returns how it
// ended: nil for status 0, an *exec.ExitError, the error of starting it,
// or errAbandoned.
func (a *Activator) runProcess(p *proc) error {
	cmd, outs, err := a.startProcess(p)
	if err != nil {
		return err
	}
	pid := cmd.Process.Pid
	pidfd, perr := openPidfd(pid)
	a.mu.Lock()
	p.pid, p.pidfd, p.outs = pid, pidfd, outs
	if a.closed {
		p.abandonLocked()
	}
	a.mu.Unlock()
	a.log.Info("service started", "service", p.e.svc.Name, "pid", pid, "user", p.e.acct.name, "exec", p.e.svc.Exec[0])
	lim := newLimiter(a.cfg.clock)
	var outWG sync.WaitGroup
	for i, r := range outs {
		outWG.Add(1)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer outWG.Done()
			a.copyOutput(p, [2]string{"stdout", "stderr"}[i], r, lim)
		}()
	}
	if perr == nil {
		if err := waitPidfd(pidfd); err != nil {
			cmd.Process.Release() // Close: it runs on, unfollowed
			return errAbandoned
		}
		defer pidfd.Close()
	} else {
		// No pidfd (a kernel before 5.10): Wait blocks, and Close
		// cannot end this goroutine before the process ends.
		a.log.Debug("no pidfd for the service: waiting for it the old way", "service", p.e.svc.Name, "err", perr)
	}
	err = cmd.Wait()
	outputDone := make(chan struct{})
	go func() {
		outWG.Wait()
		close(outputDone)
	}()
	t := time.NewTimer(outputGrace)
	defer t.Stop()
	select { // its last words first, then its end
	case <-outputDone:
	case <-t.C:
	case <-a.ctx.Done():
	}
	a.logDropped(p, lim)
	return err
}

// startProcess starts p's command: a clean environment (env), stdin
// /dev/null, stdout and stderr to pipes whose read ends it returns, a
// session of its own, cwd /, p's user, and no descriptor but 0, 1 and 2.
func (a *Activator) startProcess(p *proc) (*exec.Cmd, []*os.File, error) {
	var rs, ws []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(rs)
			closeAll(ws)
			return nil, nil, err
		}
		rs, ws = append(rs, r), append(ws, w)
	}
	e := p.e
	cmd := &exec.Cmd{
		Path:   e.svc.Exec[0],
		Args:   e.svc.Exec,
		Env:    a.env(e),
		Dir:    "/",
		Stdout: ws[0],
		Stderr: ws[1],
		// Stdin nil is /dev/null. No Pdeathsig: the service outlives busd.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Credential: e.acct.cred},
	}
	markCloseOnExec()
	err := cmd.Start()
	closeAll(ws)
	if err != nil {
		closeAll(rs)
		return nil, nil, err
	}
	return cmd, rs, nil
}

// env is the whole environment of e's process: PATH, HOME, USER and
// LOGNAME, then the file's env lines (which may replace those), then
// BUSD_SOCKET and BUSD_SERVICE. A later KEY wins (exec.Cmd.Env).
func (a *Activator) env(e *entry) []string {
	env := []string{"PATH=" + a.cfg.Path, "HOME=" + e.acct.home, "USER=" + e.acct.name, "LOGNAME=" + e.acct.name}
	env = append(env, e.svc.Env...)
	if a.cfg.Socket != "" {
		env = append(env, "BUSD_SOCKET="+a.cfg.Socket)
	}
	return append(env, "BUSD_SERVICE="+e.svc.Name)
}

// finish ends p: it is no longer the name's process, and if its start
// was pending, its waiters learn why it failed.
func (a *Activator) finish(p *proc, err error) {
	name := p.e.svc.Name
	a.mu.Lock()
	if a.procs[name] == p {
		delete(a.procs, name)
	}
	var waiters []func(error)
	if p.pending {
		p.pending = false
		a.starting--
		waiters, p.waiters = p.waiters, nil
	}
	a.mu.Unlock()
	switch {
	case errors.Is(err, errAbandoned):
		return
	case p.e.svc.SystemdUnit != "" && err == nil:
		// systemd has the job; whether the unit starts, the broker learns
		// when the service takes its name, or by its timeout.
		a.log.Info("systemd is starting the unit", "service", name, "unit", p.e.svc.SystemdUnit)
		return
	case len(waiters) == 0:
		if err != nil {
			a.log.Warn("service exited", "service", name, "pid", p.pid, "status", err.Error())
		} else {
			a.log.Info("service exited", "service", name, "pid", p.pid, "status", "exit status 0")
		}
		return
	case err == nil:
		err = ErrExitedWithoutName
	}
	a.mu.Lock()
	a.failures[p.e] = failure{time.Now(), err}
	a.mu.Unlock()
	a.log.Warn("activation failed", "service", name, "pid", p.pid, "err", err)
	for _, failed := range waiters {
		failed(err)
	}
}
