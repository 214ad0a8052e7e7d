package clientlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/policy"
)

func requestName(t *testing.T, c *Conn, name string, want NameResult, flags ...NameFlag) {
	t.Helper()
	got, err := c.RequestName(testCtx(t), name, flags...)
	if err != nil || got != want {
		t.Fatalf("RequestName(%q): %q, %v; want %q", name, got, err, want)
	}
}

func nextChange(t *testing.T, ch <-chan NameChange) NameChange {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the watch ended")
		}
		return ev
	case <-testCtx(t).Done():
		t.Fatal("no name change")
	}
	panic("unreachable")
}

func connOfHolder(h *NameHolder) uint64 {
	if h == nil {
		return 0
	}
	return h.ConnID
}

// The first owns the name, the second queues and takes over when the first
// goes, with its subscription made in advance; a watcher sees both.
func TestRequestNameQueueTakesOver(t *testing.T) {
	path, _ := startBus(t)
	a, b, w := connect(t, path), connect(t, path), connect(t, path)
	ch, err := w.WatchName(testCtx(t), "org.example.Svc")
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextChange(t, ch); ev.New != nil || ev.Old != nil {
		t.Fatalf("first report %+v; want nobody", ev)
	}
	requestName(t, a, "org.example.Svc", PrimaryOwner)
	if ev := nextChange(t, ch); connOfHolder(ev.New) != a.ConnID() || ev.New.PID != os.Getpid() {
		t.Fatalf("change %+v", ev)
	}
	if _, err := b.Subscribe("_NAME.org.example.Svc.>", func(m *Msg) { m.Respond([]byte("b")) }); err != nil {
		t.Fatal(err)
	}
	requestName(t, b, "org.example.Svc", InQueue)
	o, err := w.NameOwner(testCtx(t), "org.example.Svc")
	if err != nil || connOfHolder(o.Owner) != a.ConnID() || len(o.Queue) != 1 || o.Queue[0].ConnID != b.ConnID() {
		t.Fatalf("owner %+v, %v", o, err)
	}
	a.Close()
	ev := nextChange(t, ch)
	if connOfHolder(ev.Old) != a.ConnID() || connOfHolder(ev.New) != b.ConnID() {
		t.Fatalf("handover %+v", ev)
	}
	r, err := w.Request(testCtx(t), "_NAME.org.example.Svc.ping", nil)
	if err != nil || string(r.Data) != "b" {
		t.Fatalf("request: %v", err)
	}
	if got, err := b.ReleaseName(testCtx(t), "org.example.Svc"); err != nil || got != Released {
		t.Fatalf("release: %q, %v", got, err)
	}
	if _, err := w.Request(testCtx(t), "_NAME.org.example.Svc.ping", nil); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("request to nobody: %v", err)
	}
	names, total, err := w.Names(testCtx(t))
	if err != nil || total != 0 || len(names) != 0 {
		t.Fatalf("Names: %v %d %v", names, total, err)
	}
}

// WatchName started while the name changes owner all the time reports a
// chain with no gap and no repeat: each change's Old is the previous
// New, and the numbers grow.
func TestWatchNameIsRaceFree(t *testing.T) {
	path, _ := startBus(t)
	a, b, w := connect(t, path), connect(t, path), connect(t, path)
	const rounds = 200
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range rounds {
			x := a
			if i%2 == 1 {
				x = b
			}
			if _, err := x.RequestName(ctx, "flip"); err != nil {
				done <- err
				return
			}
			if _, err := x.ReleaseName(ctx, "flip"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	ch, err := w.WatchName(testCtx(t), "flip")
	if err != nil {
		t.Fatal(err)
	}
	prev := nextChange(t, ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final, err := w.NameOwner(testCtx(t), "flip")
	if err != nil || final.Owner != nil {
		t.Fatalf("final %+v, %v", final, err)
	}
	n := 0
	for prev.Seq < final.Seq {
		ev := nextChange(t, ch)
		if ev.Seq <= prev.Seq || connOfHolder(ev.Old) != connOfHolder(prev.New) {
			t.Fatalf("change %+v after %+v: a gap or a repeat", ev, prev)
		}
		prev = ev
		n++
	}
	if prev.Seq != final.Seq || prev.New != nil {
		t.Fatalf("last change %+v; the final state is %+v", prev, final)
	}
	t.Logf("%d changes seen", n)
}

// Names owned are asked for again after a reconnect.
func TestNamesRestoredAfterReconnect(t *testing.T) {
	path, srv, c, events := eventConn(t)
	requestName(t, c, "keep.me", PrimaryOwner)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	serveOn(t, path)
	e := nextConnEvent(t, events, "reconnected")
	if e.restored.Names != 1 {
		t.Fatalf("restored %+v; want 1 name", e.restored)
	}
	o, err := c.NameOwner(testCtx(t), "keep.me")
	if err != nil || connOfHolder(o.Owner) != c.ConnID() {
		t.Fatalf("after the reconnect: %+v, %v", o, err)
	}
}

// A watch of a name carries on across a broker restart: it reports the
// owner the new broker knows (nobody, the old owner having not come back)
// as a change from the last one, then the new broker's changes, though
// their numbers (Seq) start again below those of the old broker.
func TestWatchNameFollowsARestart(t *testing.T) {
	path, srv, w, events := eventConn(t)
	old := connect(t, path, WithNoReconnect())
	for range 3 { // numbers the old broker's changes past those the new one will give
		requestName(t, old, "org.example.Watched", PrimaryOwner)
		if _, err := old.ReleaseName(testCtx(t), "org.example.Watched"); err != nil {
			t.Fatal(err)
		}
	}
	requestName(t, old, "org.example.Watched", PrimaryOwner)
	changes, err := w.WatchName(testCtx(t), "org.example.Watched")
	if err != nil {
		t.Fatal(err)
	}
	first := nextChange(t, changes)
	if connOfHolder(first.New) != old.ConnID() {
		t.Fatalf("first change %+v; want the owner conn %d", first, old.ConnID())
	}
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	serveOn(t, path)
	nextConnEvent(t, events, "reconnected")
	gone := nextChange(t, changes)
	if gone.New != nil || connOfHolder(gone.Old) != connOfHolder(first.New) {
		t.Fatalf("after the restart: %+v; want the old owner gone (New nil, Old conn %d)", gone, connOfHolder(first.New))
	}
	successor := connect(t, path)
	requestName(t, successor, "org.example.Watched", PrimaryOwner)
	taken := nextChange(t, changes)
	if connOfHolder(taken.New) != successor.ConnID() || taken.Old != nil || taken.Seq > first.Seq {
		t.Fatalf("the new broker's change %+v; want the successor conn %d from nobody, numbered anew (at most %d)", taken, successor.ConnID(), first.Seq)
	}
}

// Refusals are errors to match: a name the policy keeps, a bound reached,
// a bad name.
func TestRequestNameRefusals(t *testing.T) {
	p, err := policy.Parse("test.policy", strings.NewReader(fmt.Sprintf("deny uid %d own secret.>\nallow uid %d all >", os.Getuid(), os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := startBusWith(t, func(c *bus.Config) { c.Policy = p; c.MaxNames = 2 })
	c := connect(t, path)
	if _, err := c.RequestName(testCtx(t), "secret.x"); !errors.Is(err, ErrNameForbidden) || !strings.Contains(err.Error(), "rule at line 1") {
		t.Fatalf("secret: %v", err)
	}
	requestName(t, c, "one", PrimaryOwner)
	requestName(t, c, "two", PrimaryOwner)
	if _, err := c.RequestName(testCtx(t), "three"); !errors.Is(err, ErrNameLimit) {
		t.Fatalf("third: %v", err)
	}
	if _, err := c.RequestName(testCtx(t), "_x"); err == nil {
		t.Fatal("a reserved name was asked for")
	}
}

// SingleInstance: the first owns the name; the second hands it its
// arguments and a file, and returns ErrHandedOver once acknowledged.
func TestSingleInstance(t *testing.T) {
	path, _ := startBus(t)
	first, second := connect(t, path), connect(t, path)
	inst, err := SingleInstance(testCtx(t), first, "org.example.App", []string{"a"})
	if err != nil || inst == nil {
		t.Fatalf("first: %v", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "doc")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("contents")
	defer f.Close()
	handed := make(chan error, 1)
	go func() {
		_, err := SingleInstance(testCtx(t), second, "org.example.App", []string{"open", "doc"}, f)
		handed <- err
	}()
	l, err := inst.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Args, []string{"open", "doc"}) || len(l.Files) != 1 || l.PID != os.Getpid() {
		t.Fatalf("launch %+v", l)
	}
	b := make([]byte, 8)
	if n, err := l.Files[0].ReadAt(b, 0); string(b[:n]) != "contents" {
		t.Fatalf("the file reads %q, %v", b[:n], err)
	}
	l.Files[0].Close()
	select {
	case err := <-handed:
		t.Fatalf("handed over before the ack: %v", err)
	default:
	}
	if err := l.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := <-handed; !errors.Is(err, ErrHandedOver) {
		t.Fatalf("second: %v", err)
	}
	if err := inst.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Now the second may be the instance.
	if inst, err := SingleInstance(testCtx(t), second, "org.example.App", nil); err != nil || inst == nil {
		t.Fatalf("after the first closed: %v", err)
	}
}

// A name the broker does not give back after a reconnect (here a new
// broker's policy keeps it) is reported to the error handler, since
// nobody waits for the answer to the request the reconnect sent.
func TestNameNotRestoredIsReported(t *testing.T) {
	errs := make(chan error, 4)
	path, srv, c, events := eventConn(t, WithErrorHandler(func(_ *Conn, _ *Subscription, err error) { errs <- err }))
	requestName(t, c, "org.example.Kept", PrimaryOwner)
	requestName(t, c, "org.example.Free", PrimaryOwner)
	stopBus(t, srv)
	nextConnEvent(t, events, "disconnected")
	p, err := policy.Parse("test.policy", strings.NewReader(fmt.Sprintf("deny uid %d own org.example.Kept", os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	serveWith(t, path, func(cfg *bus.Config) { cfg.Policy = p })
	nextConnEvent(t, events, "reconnected")
	select {
	case err := <-errs:
		if !errors.Is(err, ErrNameForbidden) || !strings.Contains(err.Error(), `"org.example.Kept"`) {
			t.Fatalf("error handler got %v; want org.example.Kept forbidden", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("the name not restored was not reported")
	}
	o, err := c.NameOwner(testCtx(t), "org.example.Free")
	if err != nil || connOfHolder(o.Owner) != c.ConnID() {
		t.Fatalf("the other name after the reconnect: %+v, %v; want it owned again", o, err)
	}
	select {
	case err := <-errs:
		t.Fatalf("a second error: %v", err)
	default:
	}
}
