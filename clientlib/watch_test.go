package clientlib

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// nextEvent returns Watch's next event, failing the test if the channel
// closes or nothing comes within the watchdog.
func nextEvent(t *testing.T, ch <-chan BusEvent) BusEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("Watch's channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a BusEvent")
		panic("unreachable")
	}
}

func expectEvent(t *testing.T, ch <-chan BusEvent, want BusEvent) {
	t.Helper()
	if got := nextEvent(t, ch); got != want {
		t.Fatalf("got %+v; want %+v", got, want)
	}
}

// drainClosed reads ch until it closes, failing on any event.
func drainClosed(t *testing.T, ch <-chan BusEvent) {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("unexpected %+v", ev)
		case <-time.After(10 * time.Second):
			t.Fatal("Watch's channel did not close")
		}
	}
}

// Watch reports the buses up first (not a stale socket, a dot-name or
// another file), then buses coming up and going down in order, once each,
// and its channel closes when its context ends.
func TestWatch(t *testing.T) {
	dir := filepath.Join(tempBusDir(t), "w")
	sock := func(name string) string { return SocketPath(dir, name) }
	a := serveAt(t, sock("a"))
	serveAt(t, sock("b"))
	staleSocket(t, sock("stale"))
	staleSocket(t, filepath.Join(dir, ".c.sock"))
	if err := os.WriteFile(filepath.Join(dir, "notes.sock.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ch, err := Watch(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	expectEvent(t, ch, BusEvent{"a", sock("a"), true})
	expectEvent(t, ch, BusEvent{"b", sock("b"), true})

	// A stale socket appearing is no bus: the next event is c's.
	staleSocket(t, sock("stale2"))
	c := serveAt(t, sock("c"))
	expectEvent(t, ch, BusEvent{"c", sock("c"), true})
	stopBus(t, c)
	expectEvent(t, ch, BusEvent{"c", sock("c"), false})
	// A bus replacing a stale socket is up.
	serveAt(t, sock("stale"))
	expectEvent(t, ch, BusEvent{"stale", sock("stale"), true})
	stopBus(t, a)
	expectEvent(t, ch, BusEvent{"a", sock("a"), false})

	cancel()
	drainClosed(t, ch)
}

// Once its context ends, a Watch leaves no goroutine and no descriptor
// behind, whether its consumer was reading or not.
func TestWatchLeavesNothing(t *testing.T) {
	dir := filepath.Join(tempBusDir(t), "w")
	serveAt(t, SocketPath(dir, "a"))
	serveAt(t, SocketPath(dir, "b"))
	before := countResources(t)
	for _, read := range []bool{true, false} {
		ctx, cancel := context.WithCancel(testCtx(t))
		ch, err := Watch(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if during := countResources(t); during.inotify != before.inotify+1 || during.goroutines <= before.goroutines {
			t.Fatalf("while watching: %+v, before %+v; the count misses the watch", during, before)
		}
		if read {
			expectEvent(t, ch, BusEvent{"a", SocketPath(dir, "a"), true})
		}
		cancel() // "b" is pending; with !read, "a" too
		for range ch {
		}
		settles(t, before)
	}
}

// Watch on a directory not made yet reports its buses once it is, and
// their going down when it is removed.
func TestWatchDirLater(t *testing.T) {
	base := tempBusDir(t)
	dir := filepath.Join(base, "p", "w")
	ch, err := Watch(testCtx(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(base, "p"))
	serveAt(t, SocketPath(dir, "x")) // makes dir
	expectEvent(t, ch, BusEvent{"x", SocketPath(dir, "x"), true})
	// A directory removed (with its socket) takes its buses down; the
	// broker keeps its lock on a file now gone.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, ch, BusEvent{"x", SocketPath(dir, "x"), false})
}

// After lost events, a rescan reports exactly the differences.
func TestWatchRescan(t *testing.T) {
	dir := filepath.Join(tempBusDir(t), "w")
	serveAt(t, SocketPath(dir, "kept"))
	serveAt(t, SocketPath(dir, "new"))
	dw, err := newDirWatch(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dw.close()
	// What the watch believed before events were lost: "gone" up (it went
	// down unseen), "kept" up, "new" not yet seen.
	bw := &busWatch{dw: dw, up: map[string]bool{"gone": true, "kept": true}}
	got, ok := bw.refollow()
	want := []BusEvent{{"gone", SocketPath(dir, "gone"), false}, {"new", SocketPath(dir, "new"), true}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("refollow = %+v, %v; want %+v", got, ok, want)
	}
	if !reflect.DeepEqual(bw.up, map[string]bool{"kept": true, "new": true}) {
		t.Fatalf("after refollow, up = %v", bw.up)
	}
	if got, _ := bw.refollow(); len(got) != 0 {
		t.Fatalf("a second rescan reports %+v; want nothing", got)
	}
}

func TestDiffBuses(t *testing.T) {
	ev := func(name string, up bool) BusEvent { return BusEvent{name, SocketPath("/d", name), up} }
	for _, tc := range []struct {
		was, now map[string]bool
		want     []BusEvent
	}{
		{nil, nil, nil},
		{map[string]bool{"a": true}, map[string]bool{"a": true}, nil},
		{nil, map[string]bool{"b": true, "a": true}, []BusEvent{ev("a", true), ev("b", true)}},
		{map[string]bool{"b": true, "a": true}, nil, []BusEvent{ev("a", false), ev("b", false)}},
		{map[string]bool{"a": true, "c": true}, map[string]bool{"b": true, "c": true},
			[]BusEvent{ev("a", false), ev("b", true)}},
	} {
		if got := diffBuses("/d", tc.was, tc.now); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("diffBuses(%v, %v) = %+v; want %+v", tc.was, tc.now, got, tc.want)
		}
	}
}

func TestBusName(t *testing.T) {
	for base, want := range map[string]string{
		"default.sock": "default", "a.b.sock": "a.b",
		".sock": "", ".x.sock.abc123": "", ".x.sock": "", "x.lock": "", "x.sock.txt": "", "x": "",
	} {
		if got, ok := busName(base); got != want || ok != (want != "") {
			t.Errorf("busName(%q) = %q, %v; want %q", base, got, ok, want)
		}
	}
}
