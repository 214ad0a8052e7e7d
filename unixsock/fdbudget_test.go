package unixsock

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBudget grants reservations while fewer than limit descriptors are
// charged, and records what the Conn does with it.
type testBudget struct {
	mu       sync.Mutex
	limit    int
	held     int // reserved or charged, not yet released
	peak     int
	reserves int
	errs     []string
	// events, if not nil, gets "reserve N" and "release N" as they
	// happen, without blocking.
	events chan string
}

func (b *testBudget) ReserveFDs(most int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := max(min(most, b.limit-b.held), 0)
	b.held += n
	b.peak = max(b.peak, b.held)
	b.reserves++
	b.note("reserve", n)
	return n
}

func (b *testBudget) ReleaseFDs(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n <= 0 || n > b.held {
		b.errs = append(b.errs, fmt.Sprintf("ReleaseFDs(%d) with %d held", n, b.held))
	}
	b.held -= n
	b.note("release", n)
}

func (b *testBudget) note(what string, n int) {
	if b.events == nil {
		return // and allocate nothing
	}
	select {
	case b.events <- fmt.Sprint(what, " ", n):
	default:
	}
}

// check fails the test unless exactly want descriptors are charged and the
// Conn never released more than it held.
func (b *testBudget) check(t *testing.T, want int) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Error(e)
	}
	if b.held != want {
		t.Fatalf("budget holds %d descriptors; want %d", b.held, want)
	}
}

// TestFDBudgetTruncates sends 5 descriptors to a Conn whose budget grants k
// < 5: the kernel installs only k, the read fails with an error naming k,
// and those k are closed (or handed to the closer) with their charge.
func TestFDBudgetTruncates(t *testing.T) {
	for _, k := range []int{0, 2} {
		for _, withCloser := range []bool{false, true} {
			t.Run(fmt.Sprintf("grant%d/closer=%t", k, withCloser), func(t *testing.T) {
				checkFDLeaks(t)
				a, b := socketPair(t)
				_, w := pipeFDs(t)
				bud := &testBudget{limit: k}
				b.SetFDBudget(bud)
				before := len(openFDs(t))
				var handed []int
				if withCloser {
					b.SetFDCloser(func(fds []int) {
						if open := len(openFDs(t)); open != before+len(fds) {
							t.Errorf("%d descriptors open in the closer; want %d before the read + %d handed over", open, before, len(fds))
						}
						handed = fds
					})
				}
				if _, err := a.WriteWithFDs([]byte("abc"), []int{w, w, w, w, w}); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 8)
				n, err := b.Read(buf)
				if n != 3 || !errors.Is(err, ErrFDsTruncated) || !errors.Is(err, ErrFDBudget) {
					t.Fatalf("Read = %d, %v; want 3 bytes and an error matching ErrFDsTruncated and ErrFDBudget", n, err)
				}
				if want := fmt.Sprintf("accept %d descriptors", k); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
				if bud.peak != k {
					t.Errorf("budget peaked at %d; want the %d granted", bud.peak, k)
				}
				if withCloser {
					// The closer got exactly what the kernel installed,
					// still open, and their charge.
					if len(handed) != k {
						t.Fatalf("closer got %v; want %d descriptors", handed, k)
					}
					for _, fd := range handed {
						if fstatID(t, fd) != fstatID(t, w) {
							t.Errorf("handed fd %d is not the pipe sent", fd)
						}
					}
					bud.check(t, k)
					closeFDs(handed)
					if k > 0 {
						bud.ReleaseFDs(k)
					}
				} else if open := len(openFDs(t)); open != before {
					t.Errorf("%d descriptors open after the read; want the %d before it", open, before)
				}
				bud.check(t, 0)
				// The error sticks, budget and all.
				if _, err := b.Read(buf); !errors.Is(err, ErrFDBudget) || !errors.Is(err, ErrFDsTruncated) {
					t.Fatalf("second Read = %v; want the same error", err)
				}
			})
		}
	}
}

// A truncation with the connection's whole limit granted is not the
// budget's doing.
func TestFDBudgetFullGrantTruncationIsPlain(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t, WithMaxRecvFDs(2))
	_, w := pipeFDs(t)
	bud := &testBudget{limit: 100}
	b.SetFDBudget(bud)
	if _, err := a.WriteWithFDs([]byte("abc"), []int{w, w, w, w, w}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Read(make([]byte, 8))
	if !errors.Is(err, ErrFDsTruncated) || errors.Is(err, ErrFDBudget) {
		t.Fatalf("Read error = %v; want ErrFDsTruncated without ErrFDBudget", err)
	}
	if bud.peak != 2 {
		t.Errorf("budget peaked at %d; want the limit, 2", bud.peak)
	}
	bud.check(t, 0)
}

// budgetedRead returns the reading end of a socketpair with a budget of 10
// that has read one byte and, with it, nfds duplicates of w, the write end
// of a pipe.
func budgetedRead(t *testing.T, nfds int) (b *Conn, bud *testBudget, w int) {
	t.Helper()
	a, b := socketPair(t)
	_, w = pipeFDs(t)
	bud = &testBudget{limit: 10}
	b.SetFDBudget(bud)
	if _, err := a.WriteWithFDs([]byte("x"), slices.Repeat([]int{w}, nfds)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 8)); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	return b, bud, w
}

// TestFDBudgetChargesReceived: installed descriptors stay charged, TakeFDs
// passes the charge to its caller, and Close releases the rest.
func TestFDBudgetChargesReceived(t *testing.T) {
	checkFDLeaks(t)
	b, bud, _ := budgetedRead(t, 3)
	if bud.reserves == 0 || bud.peak != 10 {
		t.Errorf("%d reservations peaking at %d; want each read to reserve all 10 the budget has", bud.reserves, bud.peak)
	}
	bud.check(t, 3)
	fds, err := b.TakeFDs(2)
	if err != nil {
		t.Fatal(err)
	}
	bud.check(t, 3) // the caller's now, still charged
	closeFDs(fds)
	bud.ReleaseFDs(len(fds))
	bud.check(t, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	bud.check(t, 0) // Close closed the third and released it
}

// TestFDBudgetReleasedWhileWaiting: a read that finds nothing gives its
// reservation back before it waits, so an idle connection holds none.
func TestFDBudgetReleasedWhileWaiting(t *testing.T) {
	checkFDLeaks(t)
	a, b := socketPair(t)
	bud := &testBudget{limit: 10, events: make(chan string, 100)}
	b.SetFDBudget(bud)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(b, make([]byte, 2))
		done <- err
	}()
	// The first attempt finds the socket empty (nothing is written until
	// it has released).
	for _, want := range []string{"reserve 10", "release 10"} {
		select {
		case ev := <-bud.events:
			if ev != want {
				t.Fatalf("budget saw %q; want %q", ev, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("budget saw nothing in 5s; want %q", want)
		}
	}
	bud.check(t, 0)
	if _, err := a.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bud.check(t, 0)
	bud.mu.Lock()
	events := bud.events
	bud.events = nil
	bud.mu.Unlock()
	close(events)
	n := 0
	for ev := range events {
		if want := []string{"reserve 10", "release 10"}[n%2]; ev != want {
			t.Fatalf("event %d after the first attempt is %q; want %q", n, ev, want)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("%d budget calls after the first attempt; want the successful read's reserve and release", n)
	}
}

// greedyBudget grants a fixed amount, whatever the limit, and counts.
type greedyBudget struct {
	grant    int
	released int
}

func (g *greedyBudget) ReserveFDs(int) int { return g.grant }
func (g *greedyBudget) ReleaseFDs(n int)   { g.released += n }

func TestFDBudgetOutOfRangeGrants(t *testing.T) {
	checkFDLeaks(t)
	t.Run("above max", func(t *testing.T) {
		a, b := socketPair(t, WithMaxRecvFDs(4))
		_, w := pipeFDs(t)
		g := &greedyBudget{grant: 9}
		b.SetFDBudget(g)
		if _, err := a.WriteWithFDs([]byte("x"), []int{w, w, w, w}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		// 9 reserved, 5 given back at once as beyond the limit, all 4
		// installed.
		if g.released != 5 || b.QueuedFDs() != 4 {
			t.Fatalf("released %d with %d queued; want 5 and 4", g.released, b.QueuedFDs())
		}
	})
	t.Run("negative", func(t *testing.T) {
		a, b := socketPair(t)
		_, w := pipeFDs(t)
		g := &greedyBudget{grant: -3}
		b.SetFDBudget(g)
		if _, err := a.WriteWithFDs([]byte("x"), []int{w}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrFDBudget) || g.released != 0 {
			t.Fatalf("Read = %v, %d released; want ErrFDBudget and nothing released", err, g.released)
		}
	})
}

func TestSetFDBudgetAfterReadPanics(t *testing.T) {
	a, b := socketPair(t)
	a.Write([]byte("x"))
	if _, err := b.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SetFDBudget after Read did not panic")
		}
	}()
	b.SetFDBudget(&testBudget{})
}

func TestFDBudgetReadDoesNotAllocate(t *testing.T) {
	a, b := socketPair(t)
	bud := &testBudget{limit: 10}
	b.SetFDBudget(bud)
	out := []byte("0123456789abcdef")
	in := make([]byte, len(out))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Write+Read with a budget allocate %v times; want 0", allocs)
	}
	bud.check(t, 0)
}

// The budget is not consulted by a Conn that accepts no descriptors.
func TestFDBudgetUnusedWithoutFDs(t *testing.T) {
	a, b := socketPair(t, WithMaxRecvFDs(0))
	bud := &testBudget{limit: 10}
	b.SetFDBudget(bud)
	a.Write([]byte("x"))
	if _, err := b.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if bud.reserves != 0 {
		t.Fatalf("%d reservations; want none", bud.reserves)
	}
}
