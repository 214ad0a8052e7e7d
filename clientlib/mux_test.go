package clientlib

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// Subscriptions with one key share one SUB; the last to leave sends the
// UNSUB, and a subscription made after that gets a SUB of its own.
func TestSubscriptionsWithOneKeyShareOneBrokerSubscription(t *testing.T) {
	fb := newFakeBus(t)
	c := fb.connect()
	var subs []*Subscription
	for range 3 {
		s, err := c.SubscribeSync("x.*")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if _, err := c.QueueSubscribeSync("x.*", "g"); err != nil {
		t.Fatal(err)
	}
	plain := fb.expect(wire.OpSub)
	if g := fb.expect(wire.OpSub); string(g.Reply) != "g" {
		t.Fatalf("second SUB is for group %q; want the queue group's own, g", g.Reply)
	}
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
	}
	again, err := c.SubscribeSync("x.*")
	if err != nil {
		t.Fatal(err)
	}
	if u := fb.expect(wire.OpUnsub); u.ID != plain.ID {
		t.Fatalf("UNSUB of %d; want the shared subscription's, %d", u.ID, plain.ID)
	}
	if s := fb.expect(wire.OpSub); s.ID == plain.ID || string(s.Topic) != "x.*" {
		t.Fatalf("after the last left, a new subscription sent SUB %d %q; want a new id for x.*", s.ID, s.Topic)
	}
	go c.Flush(context.Background())
	fb.pong() // one UNSUB only: the first two to leave sent none
	again.Unsubscribe()
}

// Every plain subscription on a pattern gets every message, however it
// receives them, each its own Msg.
func TestEverySubscriptionOnAPatternGetsEveryMessage(t *testing.T) {
	path, _ := startBus(t)
	opt, reported := reports()
	c := connect(t, path, opt)
	const n = 200
	var mu sync.Mutex
	got := map[string][]*Msg{}
	handled := make(chan struct{}, 2*n)
	keep := func(name string) func(*Msg) {
		return func(m *Msg) {
			mu.Lock()
			got[name] = append(got[name], m)
			mu.Unlock()
			handled <- struct{}{}
		}
	}
	var sums sync.Map // the ReuseMessages handler may keep nothing: it keeps a copy
	if _, err := c.Subscribe("fan.out", keep("handler")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe("fan.out", func(m *Msg) {
		sums.Store(string(m.Data), true)
		handled <- struct{}{}
	}, ReuseMessages()); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *Msg, n)
	if _, err := c.SubscribeChan("fan.out", ch); err != nil {
		t.Fatal(err)
	}
	sync1, err := c.SubscribeSync("fan.out")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	for i := range n {
		c.Publish("fan.out", []byte(strconv.Itoa(i)))
	}
	flush(t, c)
	for range 2 * n {
		select {
		case <-handled:
		case <-testCtx(t).Done():
			t.Fatal("the handlers did not get every message")
		}
	}
	for range n {
		got["chan"] = append(got["chan"], <-ch)
		got["sync"] = append(got["sync"], next(t, sync1))
	}
	seen := map[*Msg]bool{}
	for name, msgs := range got {
		for i, m := range msgs {
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("%s subscription: message %d is %q", name, i, m.Data)
			}
			if seen[m] {
				t.Fatalf("%s subscription: message %d is a Msg another subscription got too", name, i)
			}
			seen[m] = true
		}
	}
	for i := range n {
		if _, ok := sums.Load(strconv.Itoa(i)); !ok {
			t.Fatalf("the ReuseMessages subscription missed message %d", i)
		}
	}
	select {
	case r := <-reported:
		t.Fatalf("reported %v", r.err)
	default:
	}
}

// Each receiver of a message owns its descriptors: closing one's leaves
// the others' open, and nothing leaks.
func TestSharedSubscriptionsOwnTheirFiles(t *testing.T) {
	path, _ := startBus(t)
	base := countFDs(t)
	c := connect(t, path)
	a, _ := c.SubscribeSync("fan.fd")
	b, _ := c.SubscribeSync("fan.fd")
	flush(t, c)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("fan.fd", nil, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	ma, mb := next(t, a), next(t, b)
	if len(ma.Files) != 1 || len(mb.Files) != 1 {
		t.Fatalf("got %d and %d files; want one each", len(ma.Files), len(mb.Files))
	}
	fa, fb := int(ma.Files[0].Fd()), int(mb.Files[0].Fd())
	if fa == fb {
		t.Fatalf("both receivers got descriptor %d", fa)
	}
	for _, fd := range []int{fa, fb} {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Fatalf("descriptor %d: flags %#x, %v; want FD_CLOEXEC", fd, flags, err)
		}
	}
	ma.CloseFiles()
	w.WriteString("still open")
	w.Close()
	if got, err := io.ReadAll(mb.Files[0]); err != nil || string(got) != "still open" {
		t.Fatalf("the second receiver read %q, %v after the first closed its file", got, err)
	}
	mb.CloseFiles()
	c.Close()
	waitFDs(t, base)
}

// A queue group's members on one connection share its messages: each goes
// to one of them.
func TestQueueMembersOnOneConnectionShareTheMessages(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	var members []*Subscription
	for range 2 {
		s, err := c.QueueSubscribeSync("work", "w")
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, s)
	}
	flush(t, c)
	const n = 100
	for i := range n {
		c.Publish("work", []byte(strconv.Itoa(i)))
	}
	flush(t, c)
	seen := map[string]int{}
	for i, s := range members {
		got := drainQueued(t, s)
		if len(got) == 0 {
			t.Fatalf("member %d got none of the %d messages", i, n)
		}
		for _, d := range got {
			seen[d]++
		}
	}
	if len(seen) != n {
		t.Fatalf("the members got %d distinct messages of %d", len(seen), n)
	}
	for d, k := range seen {
		if k != 1 {
			t.Fatalf("message %s went to %d members", d, k)
		}
	}
}

// drainQueued takes what is queued on s, ending it.
func drainQueued(t *testing.T, s *Subscription) []string {
	t.Helper()
	if err := s.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m, err := s.Next(testCtx(t))
		if errors.Is(err, ErrClosed) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m.Data))
	}
}

// Drain of one subscription on a shared pattern hands it everything
// published before, and leaves the others receiving.
func TestDrainOfOneSharedSubscriptionKeepsTheOthers(t *testing.T) {
	path, _ := startBus(t)
	c := connect(t, path)
	a, _ := c.SubscribeSync("keep")
	b, _ := c.SubscribeSync("keep")
	flush(t, c)
	for i := range 10 {
		c.Publish("keep", []byte(strconv.Itoa(i)))
	}
	if got := drainQueued(t, a); len(got) != 10 {
		t.Fatalf("the drained subscription got %d of the 10 messages published before Drain", len(got))
	}
	for i := 10; i < 20; i++ {
		c.Publish("keep", []byte(strconv.Itoa(i)))
	}
	flush(t, c)
	for i := range 20 {
		if m := next(t, b); string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("the subscription that stayed got %q as message %d", m.Data, i)
		}
	}
}

// The broker refusing a shared SUB ends every subscription sharing it.
func TestRefusedSharedSubscriptionEndsEveryMember(t *testing.T) {
	fb := newFakeBus(t)
	opt, reported := reports()
	c := fb.connect(opt)
	a, _ := c.SubscribeSync("no")
	b, _ := c.SubscribeSync("no")
	fb.expect(wire.OpSub)
	body, _ := wire.AppendBody(nil, &wire.Error{Code: wire.CodePermissionDenied, Text: "not you", Seq: 2, Op: wire.OpSub})
	fb.write(wire.AppendControl(nil, wire.OpErr, 0, body))
	for _, s := range []*Subscription{a, b} {
		if _, err := s.Next(testCtx(t)); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("Next on a refused subscription: %v; want ErrPermissionDenied", err)
		}
	}
	told := map[*Subscription]bool{}
	for range 2 {
		r := nextReport(t, reported)
		told[r.sub] = errors.Is(r.err, ErrPermissionDenied)
	}
	if !told[a] || !told[b] {
		t.Fatalf("the error handler was told about %v; want both members", told)
	}
	if _, err := c.SubscribeSync("no"); err != nil {
		t.Fatal(err)
	}
	if s := fb.expect(wire.OpSub); string(s.Topic) != "no" {
		t.Fatalf("a subscription after the refusal sent SUB %q; want its own SUB", s.Topic)
	}
}

// Two listeners on one connection share the stream's name: each dial
// goes to one of them.
func TestTwoListenersOnOneConnection(t *testing.T) {
	path, _ := startBus(t)
	lc := connect(t, path)
	l1, l2 := listen(t, lc, "twice"), listen(t, lc, "twice")
	flush(t, lc)
	dc := connect(t, path)
	for range 2 {
		sc, err := dc.DialStream(testCtx(t), "twice")
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
	}
	for i, l := range []*StreamListener{l1, l2} {
		sc, err := l.AcceptStream(testCtx(t))
		if err != nil {
			t.Fatalf("listener %d: %v; want one of the two dials each", i+1, err)
		}
		sc.Close()
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	sc, err := dc.DialStream(testCtx(t), "twice")
	if err != nil {
		t.Fatalf("dial after one of two listeners closed: %v", err)
	}
	sc.Close()
	if sc, err := l2.AcceptStream(testCtx(t)); err != nil {
		t.Fatal(err)
	} else {
		sc.Close()
	}
}
