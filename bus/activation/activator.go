package activation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of a Config's zero fields.
const (
	// DefaultMaxStarting is how many services may be starting at once.
	DefaultMaxStarting = 16
	// DefaultPath is the PATH a service gets (systemd's default).
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// DefaultHoldoff is how long after a failed start a service is not
	// started again.
	DefaultHoldoff = time.Second
)

// Scope says which systemd manager starts a service file's systemd_unit.
type Scope string

// The scopes.
const (
	// ScopeUser is the user's service manager: systemctl --user.
	ScopeUser Scope = "user"
	// ScopeSystem is the system's: systemctl without --user.
	ScopeSystem Scope = "system"
)

// DefaultScope is ScopeSystem for a busd running as root, and ScopeUser
// otherwise: a busd run as a user service asks its own manager, and only
// root may ask the system's to start units (polkit aside).
func DefaultScope() Scope {
	if os.Geteuid() == 0 {
		return ScopeSystem
	}
	return ScopeUser
}

// Config configures an Activator.
type Config struct {
	// Dir is the services directory. It must exist, and only busd's user
	// (or root) may write to it.
	Dir string
	// Socket is the bus's socket, given to the services it starts as
	// $BUSD_SOCKET.
	Socket string
	// Logger gets what the Activator does and the services' output; nil
	// is slog.Default().
	Logger *slog.Logger
	// MaxStarting bounds the services starting at once (started, not yet
	// the owner of their name); 0 is DefaultMaxStarting.
	MaxStarting int
	// Systemd is the manager systemd_unit services are started by; "" is
	// DefaultScope().
	Systemd Scope
	// Systemctl is the systemctl program; "" looks "systemctl" up in
	// busd's PATH when it is first needed.
	Systemctl string
	// Path is the PATH services get; "" is DefaultPath.
	Path string
	// Holdoff is how long after its start failed (its process ended, or
	// could not be started, before it took its name) a service is not
	// started again: Activate meanwhile fails at once, with the failure's
	// error. It bounds how fast requests can make a broken service
	// crash-loop. A new or changed service file is started at once. 0 is
	// DefaultHoldoff.
	Holdoff time.Duration

	clock func() time.Time // the output limiter's; nil is time.Now
}

// Activator starts the services of a services directory, on demand. It
// satisfies bus.Activator. Its methods are safe for concurrent use.
type Activator struct {
	cfg    Config
	log    *slog.Logger
	euid   int
	ctx    context.Context // ends with Close: systemctl runs, the watch
	cancel context.CancelFunc
	watch  *fsnotify.Watcher // nil if inotify could not be used
	wg     sync.WaitGroup    // every goroutine the Activator started

	reloadMu sync.Mutex        // one load of the directory at a time
	badSeen  map[string]string // file → the error last logged for it; under reloadMu
	dirSeen  string            // the directory's error last logged ("gone" for any not-exist); under reloadMu

	mu       sync.Mutex
	services map[string]*entry
	procs    map[string]*proc   // a service being started or running, by name
	starting int                // procs pending
	failures map[*entry]failure // the last failed start of a service
	closed   bool
}

// failure is a failed start: when, and why.
type failure struct {
	at  time.Time
	err error
}

// proc is one start of a service: a process, or a systemctl run. Its
// fields are guarded by Activator.mu.
type proc struct {
	e       *entry
	pending bool          // started; Owned not yet called for it
	waiters []func(error) // the failed callbacks while pending
	pidfd   *os.File      // once it runs: closed by Close to stop waiting
	outs    []*os.File    // the read ends of its stdout and stderr
	pid     int
}

// New loads the services directory and watches it for changes. It fails
// if the directory cannot be read or others may write to it
// (ErrUntrustedDir); a file in it that cannot be used is logged, and
// left out.
func New(cfg Config) (*Activator, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxStarting <= 0 {
		cfg.MaxStarting = DefaultMaxStarting
	}
	if cfg.Systemd == "" {
		cfg.Systemd = DefaultScope()
	}
	if cfg.Systemd != ScopeUser && cfg.Systemd != ScopeSystem {
		return nil, fmt.Errorf("activation: systemd scope %q: give user or system", cfg.Systemd)
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Holdoff <= 0 {
		cfg.Holdoff = DefaultHoldoff
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	a := &Activator{cfg: cfg, log: cfg.Logger, euid: os.Geteuid(), badSeen: map[string]string{}, procs: map[string]*proc{}, failures: map[*entry]failure{}}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(cfg.Dir) // before the first load: no change slips between
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		a.log.Warn("not watching the services directory; SIGHUP reads it again", "dir", cfg.Dir, "err", err)
	} else {
		a.watch = w
	}
	if err := a.reload(false); err != nil {
		a.cancel()
		if a.watch != nil {
			a.watch.Close()
		}
		return nil, err
	}
	if a.watch != nil {
		a.wg.Add(1)
		go a.watchLoop()
	}
	return a, nil
}

// Services returns the names that have a service, in no order.
func (a *Activator) Services() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.services))
	for n := range a.services {
		names = append(names, n)
	}
	return names
}

// Reload reads the services directory again. Services added, changed
// and removed are logged, and so is a file that cannot be used (once, until
// its error changes). If the directory itself is refused (it cannot be
// read, or others may write to it), no service is left, that is logged
// (once, until its error changes), and Reload returns why; it is watched again if it was removed and made anew. A
// service being started or running is not affected: a
// change applies to its next start.
func (a *Activator) Reload() error { return a.reload(true) }

// reload is Reload; logRefused says whether to log a refused directory.
func (a *Activator) reload(logRefused bool) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.watch != nil && a.ctx.Err() == nil {
		// Watch it again if it was removed and made anew (a no-op if the
		// watch holds), before it is read: no change slips between.
		a.watch.Add(a.cfg.Dir)
	}
	services, bad, err := loadDir(a.cfg.Dir, a.euid)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	old := a.services
	for n, e := range services {
		if o := old[n]; o != nil && reflect.DeepEqual(o, e) {
			services[n] = o // unchanged: the same entry, its failure kept
		}
	}
	a.services = services
	for e := range a.failures { // a changed file is a new entry: no holdoff
		if services[e.svc.Name] != e {
			delete(a.failures, e)
		}
	}
	a.mu.Unlock()
	if err != nil {
		// A directory gone is one refusal, whichever call found it gone
		// (lstat, open, reading it while it is removed).
		seen := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			seen = "gone"
		}
		if logRefused && seen != a.dirSeen {
			a.log.Error("services directory refused: no service can be activated until it is fixed", "dir", a.cfg.Dir, "err", err)
		}
		a.dirSeen = seen
		clear(a.badSeen)
		return err
	}
	a.dirSeen = ""
	a.logChanges(old, services, bad)
	return nil
}

// logChanges logs what a load changed.
func (a *Activator) logChanges(old, cur map[string]*entry, bad []error) {
	for n, e := range cur {
		switch o := old[n]; {
		case o == nil:
			a.log.Info("service loaded", "service", n, "file", e.svc.Path)
		case o != e:
			a.log.Info("service changed", "service", n, "file", e.svc.Path)
		}
	}
	for n, o := range old {
		if cur[n] == nil {
			a.log.Info("service removed", "service", n, "file", o.svc.Path)
		}
	}
	now := map[string]string{}
	for _, err := range bad {
		var fe *FileError
		if !errors.As(err, &fe) {
			continue
		}
		now[fe.Path] = err.Error()
		if a.badSeen[fe.Path] != err.Error() {
			a.log.Error("service file refused", "file", fe.Path, "err", err)
		}
	}
	a.badSeen = now
}

// watchLoop reloads the directory whenever something in it changes,
// until Close.
func (a *Activator) watchLoop() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case _, ok := <-a.watch.Events:
			if !ok {
				return
			}
		case err, ok := <-a.watch.Errors:
			if !ok {
				return
			}
			a.log.Debug("services directory watch: rereading it", "err", err) // events lost
		}
		// Read the directory again: it is small, and an editor makes a
		// burst of events that a load sums up.
		a.Reload()
	}
}

// Activate starts the service of name, unless no service file names it,
// in which case it returns false at once. It does not block: the service
// is started by a goroutine of the Activator. If the service's process
// ends, or it cannot be started, before Owned(name), failed is called
// once, after Activate has returned, with why: the process's exit status
// ("exit status 3", "signal: killed"), the exec error, or systemctl's
// failure. Only one process of a name runs at a time: while one is being
// started, or runs, Activate starts no other, and failed is called if
// that one ends before Owned(name). failed is called at once, from
// another goroutine, within Config.Holdoff of the service's last failed
// start (with that failure's error), and when Config.MaxStarting services
// are starting already (ErrTooManyStarting). After Close it returns
// false.
func (a *Activator) Activate(name string, failed func(err error)) bool {
	ready := make(chan struct{})
	defer close(ready) // failed is not called before Activate returns
	a.mu.Lock()
	ok, note := a.activateLocked(name, failed, ready)
	a.mu.Unlock()
	if note != nil {
		note()
	}
	return ok
}

// activateLocked is Activate, under a.mu; note, if not nil, logs what it
// did, once a.mu is released.
func (a *Activator) activateLocked(name string, failed func(error), ready <-chan struct{}) (ok bool, note func()) {
	if a.closed {
		return false, nil
	}
	if p := a.procs[name]; p != nil {
		if !p.pending {
			p.pending = true
			a.starting++
			pid := p.pid
			note = func() {
				a.log.Info("service still runs from an earlier start, without its name: waiting for it to take it", "service", name, "pid", pid)
			}
		}
		p.waiters = append(p.waiters, failed)
		return true, note
	}
	e := a.services[name]
	if e == nil {
		return false, nil
	}
	if f, ok := a.failures[e]; ok {
		if ago := time.Since(f.at); ago < a.cfg.Holdoff {
			a.failLater(failed, ready, fmt.Errorf("%w, %v ago (not started again within %v of a failure)", f.err, ago.Round(time.Millisecond), a.cfg.Holdoff))
			return true, nil
		}
		delete(a.failures, e)
	}
	if a.starting >= a.cfg.MaxStarting {
		err := fmt.Errorf("%w (%d)", ErrTooManyStarting, a.cfg.MaxStarting)
		a.failLater(failed, ready, err)
		return true, func() { a.log.Warn("activation refused", "service", name, "err", err) }
	}
	p := &proc{e: e, pending: true, waiters: []func(error){failed}}
	a.procs[name] = p
	a.starting++
	a.wg.Add(1)
	go a.run(p, ready)
	return true, nil
}

// failLater calls failed(err) from a goroutine of its own once
// ready is closed.
func (a *Activator) failLater(failed func(error), ready <-chan struct{}, err error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		<-ready
		failed(err)
	}()
}

// Owned tells the Activator that name has an owner: failed will not be
// called for its pending start, if any. The process goes on; its end is
// only logged.
func (a *Activator) Owned(name string) {
	a.mu.Lock()
	p := a.procs[name]
	owned := p != nil && p.pending
	pid := 0
	if owned {
		p.pending = false
		p.waiters = nil
		a.starting--
		pid = p.pid
	}
	a.mu.Unlock()
	if owned {
		a.log.Info("service took its name", "service", name, "pid", pid)
	}
}

// Close stops watching the directory and waits, until ctx ends, for the
// Activator's goroutines to end. It does not stop the services it
// started: they are services of their own, and go on. It stops following
// them: their ends are no longer logged, and their output, whose pipes it
// closes, has nowhere to go (a service that writes gets EPIPE, or
// SIGPIPE, as when busd exits); failed is not called for a start still
// pending. A systemctl it runs is killed.
func (a *Activator) Close(ctx context.Context) error {
	a.mu.Lock()
	first := !a.closed
	a.closed = true
	for _, p := range a.procs {
		p.abandonLocked()
	}
	a.mu.Unlock()
	if first {
		a.cancel()
		if a.watch != nil {
			a.watch.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("activation: closing: %w", ctx.Err())
	}
}

// abandonLocked stops following p: its waiting and output reading end.
func (p *proc) abandonLocked() {
	if p.pidfd != nil {
		p.pidfd.Close()
	}
	for _, f := range p.outs {
		f.Close()
	}
}
