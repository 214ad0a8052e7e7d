package clientlib

// Finding a bus that is not up yet: Connect waits for its socket here, and
// so does each redial of a reconnect. dialBus(ctx, path, o.trustedUIDs(),
// noWait) is the whole loop: it returns a dialed socket whose directory and
// broker passed the trust checks, waiting for the bus (fsnotify, plus a
// bounded backoff while a socket refuses) until ctx ends; the caller then
// does the handshake. It sets its own fsnotify watch for the duration of
// the call and closes it before returning.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// A socket that exists but refuses connections is retried with backoff
// (redial.go). A broker made by unixsock.Listen publishes its socket only
// once it listens, so refusal means a stale file (its broker is gone) or a
// broker that publishes differently; the file changing (a new broker
// renaming its socket into place) wakes the wait at once, and the backoff
// bounds it otherwise. This is the only timed retry in discovery.

// testHookWaiting, if set, is called by dialBus once its watch is set and
// it is about to wait for the bus at path: from then on a socket appearing
// at path wakes it.
var testHookWaiting atomic.Pointer[func(path string)]

// dialBus connects to the bus at path as Connect does: it checks the
// socket's directory, dials, and checks the broker, on every attempt. When
// nothing listens at path (no socket file, no directory yet, or a socket
// that refuses), it waits for one until ctx ends, and then returns an error
// matching ErrNoBus and ctx.Err(); with noWait it returns an error matching
// ErrNoBus at once. Other failures return at once.
func dialBus(ctx context.Context, path string, trusted []int, noWait bool) (*unixsock.Conn, error) {
	var (
		dw      *dirWatch
		timer   *time.Timer // the retries of a refusing socket
		retries int         // of a refusing socket, since it last changed
		last    error       // the last attempt's failure while the bus was not up
	)
	defer func() {
		if dw != nil {
			dw.close()
		}
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		sock, err := dialTrusted(ctx, path, trusted)
		if err == nil {
			return sock, nil
		}
		refused := errors.Is(err, syscall.ECONNREFUSED)
		if !refused && !errors.Is(err, syscall.ENOENT) {
			if cerr := ctxEnded(ctx); cerr != nil { // ctx ended as it dialed: the bus was not up in time
				return nil, noBus(path, cmp.Or(last, err), cerr)
			}
			return nil, err
		}
		last = err
		if noWait {
			return nil, fmt.Errorf("%w: nothing listens at %s (%w)%s", ErrNoBus, path, lastCause(err), noBusHint)
		}
		if ctx.Err() != nil {
			return nil, noBus(path, err, ctx.Err())
		}
		if dw == nil {
			// Dial again once the watch is set: a socket that appeared
			// before it would give no event.
			if dw, err = newDirWatch(filepath.Dir(path)); err != nil {
				return nil, fmt.Errorf("bus: waiting for %s: %w", path, err)
			}
			if h := testHookWaiting.Load(); h != nil {
				(*h)(path)
			}
			continue
		}
		var retry <-chan time.Time
		if refused && isSocket(path) {
			retries++
			d := backoff(retries)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d) // since Go 1.23, no stale value can be left in C
			}
			retry = timer.C
		} else {
			retries = 0 // a socket appearing or changing wakes the wait
		}
		if werr := dw.waitPath(ctx, path, retry); werr != nil {
			if ctx.Err() != nil {
				return nil, noBus(path, err, ctx.Err())
			}
			return nil, fmt.Errorf("bus: waiting for %s: %w", path, werr)
		}
	}
}

// ctxEnded returns ctx.Err(), or context.DeadlineExceeded once ctx's
// deadline has passed even if its timer has not yet fired: a dial checks
// the deadline itself and fails with "i/o timeout" a moment before
// ctx.Err() says so.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// noBus is the error of a wait for the bus at path that ended with ctx
// (ctxErr), last having failed with err: it matches ErrNoBus, ctxErr, and
// what err matches (syscall.ENOENT or ECONNREFUSED).
func noBus(path string, err, ctxErr error) error {
	return fmt.Errorf("%w: none came up at %s (last: %w) before the wait ended (%w)%s", ErrNoBus, path, lastCause(err), ctxErr, noBusHint)
}

// noBusHint ends the errors matching ErrNoBus with what to do.
const noBusHint = "; start its broker (busd), or name the bus that runs (WithBus, WithSocket)"

// lastCause strips the layers of err that repeat the path: "connect: no
// such file or directory" is what is left to say.
func lastCause(err error) error {
	if se, ok := errors.AsType[*os.SyscallError](err); ok {
		return se
	}
	return err
}

// dialTrusted makes one attempt: it checks that the socket's directory
// could hold no impostor's socket, dials, and checks the broker's user.
func dialTrusted(ctx context.Context, path string, trusted []int) (*unixsock.Conn, error) {
	if err := checkBusDir(path, trusted); err != nil {
		return nil, err
	}
	sock, err := unixsock.Dial(ctx, path,
		unixsock.WithMaxRecvFDs(unixsock.MaxFDsPerMessage), unixsock.WithSendBuffer(wire.SendBuffer))
	if err != nil {
		return nil, fmt.Errorf("bus: connecting to %s: %w", path, err)
	}
	if err := checkBroker(sock, trusted); err != nil {
		sock.Close()
		return nil, err
	}
	return sock, nil
}

// isSocket reports whether path names a socket, following symbolic links.
func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Type() == fs.ModeSocket
}

// dirWatch watches a directory, dir, for changes to its entries with
// fsnotify. While dir does not exist, it watches the nearest ancestor that
// does instead, and follow moves it down as the directories on the way
// appear (or up, as they go). It is used by one goroutine at a time.
type dirWatch struct {
	dir      string
	w        *fsnotify.Watcher
	watching string // dir, or while it does not exist its nearest existing ancestor
}

// newDirWatch starts watching dir (or its nearest existing ancestor).
func newDirWatch(dir string) (*dirWatch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dw := &dirWatch{dir: filepath.Clean(dir), w: w}
	if err := dw.follow(); err != nil {
		w.Close()
		return nil, err
	}
	return dw, nil
}

// close stops the watch. fsnotify's reader goroutine and its inotify
// descriptor are gone when it returns.
func (dw *dirWatch) close() { dw.w.Close() }

// inDir reports whether the watch is on dir itself.
func (dw *dirWatch) inDir() bool { return dw.watching == dw.dir }

// follow puts the watch on dir if it exists, else on its nearest existing
// ancestor. The caller then looks again at what it waits for: between a
// directory appearing and its watch being set, entries may have been made
// in it that gave no event.
func (dw *dirWatch) follow() error {
	for {
		if err := dw.watchDeepest(); err != nil {
			return err
		}
		if dw.inDir() {
			return nil
		}
		// A directory on the way made after its Add failed, and before
		// its parent's watch was set, gave no event: go down again.
		rel, err := filepath.Rel(dw.watching, dw.dir)
		if err != nil {
			return err
		}
		next := filepath.Join(dw.watching, strings.SplitN(rel, string(filepath.Separator), 2)[0])
		if fi, err := os.Stat(next); err != nil || !fi.IsDir() {
			return nil // its making will be seen
		}
	}
}

// watchDeepest moves the watch to the deepest of dir and its ancestors
// that exists.
func (dw *dirWatch) watchDeepest() error {
	for d := dw.dir; ; d = filepath.Dir(d) {
		// Adding the watch already there is harmless, and needed if its
		// directory was removed and made again.
		err := dw.w.Add(d)
		if err == nil {
			if dw.watching != "" && dw.watching != d {
				dw.w.Remove(dw.watching) // may be gone with its directory
			}
			dw.watching = d
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) || d == filepath.Dir(d) {
			return fmt.Errorf("watching %s: %w", d, err)
		}
	}
}

// onWay reports whether name is dir or one of its ancestors: a change to
// it may move the watch.
func (dw *dirWatch) onWay(name string) bool {
	return name == dw.dir || strings.HasPrefix(dw.dir, strings.TrimSuffix(name, "/")+"/")
}

// waitPath waits until something changes that may concern path, an entry
// of dir, and returns nil: an event about path, about dir or one of its
// ancestors (after which the watch has followed), or lost events; or until
// retry fires (nil: never). It returns ctx.Err() when ctx ends, or an error
// if the watch cannot follow.
func (dw *dirWatch) waitPath(ctx context.Context, path string, retry <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-retry:
			return nil
		case ev, ok := <-dw.w.Events:
			if !ok {
				return fsnotify.ErrClosed
			}
			if ev.Name == path && dw.inDir() {
				return nil
			}
			if dw.onWay(ev.Name) {
				return dw.follow()
			}
		case _, ok := <-dw.w.Errors:
			if !ok {
				return fsnotify.ErrClosed
			}
			// Events were lost (an overflow): anything may have changed.
			return dw.follow()
		}
	}
}
