package activation

import (
	"testing"
	"time"
)

// The limiter lets OutputBurst lines through at once, then OutputRate a
// second, and counts the lines it drops until it reports them.
func TestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := newLimiter(func() time.Time { return now })
	for i := range OutputBurst {
		if ok, dropped := l.take(); !ok || dropped != 0 {
			t.Fatalf("line %d: %v, %d; want it through", i, ok, dropped)
		}
	}
	for range 5 {
		if ok, _ := l.take(); ok {
			t.Fatal("a line past the burst went through")
		}
	}
	now = now.Add(time.Second / OutputRate)
	if ok, dropped := l.take(); !ok || dropped != 5 {
		t.Errorf("after a token came back: %v, %d; want true, 5 dropped", ok, dropped)
	}
	if ok, _ := l.take(); ok {
		t.Error("two lines through on one token")
	}
	if n := l.flushDropped(); n != 1 {
		t.Errorf("flushDropped = %d; want 1", n)
	}
	now = now.Add(time.Hour)
	for range OutputBurst {
		l.take()
	}
	if ok, _ := l.take(); ok {
		t.Error("the burst grew past OutputBurst")
	}
}
