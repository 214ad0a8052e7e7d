package bus

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// connRequest sends a $SYS.req.conn request for id, answered on reply.
func (c *rawClient) connRequest(id uint64, reply string) {
	c.t.Helper()
	body, err := wire.AppendBody(nil, &wire.ConnRequest{ConnID: id})
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(wire.AppendPub(nil, wire.SysReqConn, reply, nil, body, 0))
}

// nextAnswer reads the broker's answer to a request, which must come from
// connection 0 on reply, and returns its status and reason ("" if none).
func (c *rawClient) nextAnswer(reply string) (f wire.Frame, status, reason string) {
	c.t.Helper()
	f = c.next()
	if f.Op != wire.OpMsg || string(f.Topic) != reply || f.Origin.Conn != 0 || len(f.Reply) != 0 {
		c.t.Fatalf("got %v %q (reply %q) from conn %d; want the broker's answer on %q", f.Op, f.Topic, f.Reply, f.Origin.Conn, reply)
	}
	status, _ = f.Headers.Get(wire.StatusHeader)
	reason, _ = f.Headers.Get(wire.ReasonHeader)
	return f, status, reason
}

// expectStatus reads an answer that must have status, no payload and no
// descriptors, and a reason containing reason.
func (c *rawClient) expectStatus(reply, status, reason string) {
	c.t.Helper()
	f, got, why := c.nextAnswer(reply)
	if got != status || !strings.Contains(why, reason) || len(f.Payload) != 0 || f.NFDs != 0 {
		c.t.Fatalf("answer: status %q, reason %q, %d payload bytes, %d fds; want status %s saying %q and nothing else",
			got, why, len(f.Payload), f.NFDs, status, reason)
	}
}

// pidOfPidFD returns the pid a pidfd's fdinfo names: -1 once the process
// is gone.
func pidOfPidFD(t *testing.T, fd int) int {
	t.Helper()
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(info)) {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			var pid int
			if _, err := fmt.Sscan(v, &pid); err != nil {
				t.Fatalf("fdinfo of %d: %q: %v", fd, line, err)
			}
			return pid
		}
	}
	t.Fatalf("fdinfo of %d has no Pid line (not a pidfd?):\n%s", fd, info)
	return 0
}

// A $SYS.req.conn request is answered by the broker: who holds the named
// connection (its credentials, HELLO's name, when it was accepted) and a
// pidfd of its process, to the requester alone.
func TestConnRequestAnswersWhoHoldsAConnection(t *testing.T) {
	srv, path := testBroker(t, nil)
	before := time.Now()
	target := connectRaw(t, path)
	after := time.Now()
	// The target subscribes to every inbox pattern it may, plainly and in
	// a queue group: the answer must reach neither.
	target.sub(1, "_INBOX.>", "")
	target.sub(2, "_INBOX.*.>", "q")
	target.sync()
	req := connectRaw(t, path)
	req.sub(1, req.inbox(">"), "")
	req.sub(2, req.inbox(">"), "q")
	req.connRequest(target.info.ConnID, req.inbox("1"))

	got := map[uint32]bool{}
	for range 2 { // one for the plain subscription, one for the group member
		f, status, _ := req.nextAnswer(req.inbox("1"))
		got[f.ID] = true
		if status != "" || f.NFDs != 1 {
			t.Fatalf("answer on %d: status %q, %d fds; want no status and one pidfd", f.ID, status, f.NFDs)
		}
		var info wire.ConnInfo
		if err := wire.DecodeBody(f.Payload, &info); err != nil {
			t.Fatal(err)
		}
		want := wire.ConnInfo{ConnID: target.info.ConnID, PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Name: t.Name()}
		since := time.Unix(0, int64(info.Since))
		info.Since = 0
		if info != want || since.Before(before.Add(-time.Millisecond)) || since.After(after) {
			t.Fatalf("answer %+v accepted at %v; want %+v accepted between %v and %v", info, since, want, before, after)
		}
		fds, err := req.sock.TakeFDs(1)
		if err != nil {
			t.Fatal(err)
		}
		if pid := pidOfPidFD(t, fds[0]); pid != os.Getpid() {
			t.Fatalf("the answer's descriptor is a pidfd of %d; want %d", pid, os.Getpid())
		}
		unix.Close(fds[0])
	}
	if !got[1] || !got[2] {
		t.Fatalf("answers reached subscriptions %v; want 1 and 2", got)
	}
	req.sync()
	target.sync() // its PONG comes after anything queued for it before
	if st := srv.Stats(); st.Requests != 1 || st.Published != 0 {
		t.Fatalf("Stats: %d requests, %d published; want 1 request and nothing routed", st.Requests, st.Published)
	}
}

// What is not a request the broker serves gets an ERR or a status, the
// requester's connection carries on, and nothing it sent is left open.
func TestBrokerRequestRefusals(t *testing.T) {
	srv, path := testBroker(t, nil)
	base := countFDs(t)
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.sync()
	id := c.info.ConnID
	good, _ := wire.AppendBody(nil, &wire.ConnRequest{ConnID: id})
	file := memfdWith(t, "x")
	errs := []struct {
		name  string
		frame []byte
		fds   []int
		text  string
	}{
		{"no reply topic", wire.AppendPub(nil, wire.SysReqConn, "", nil, good, 0), nil, "needs a reply topic"},
		{"descriptors", wire.AppendPub(nil, wire.SysReqConn, c.inbox("1"), nil, good, 2), []int{int(file.Fd()), int(file.Fd())}, "carries no descriptors"},
		{"not a request", wire.AppendPub(nil, "$SYS.conn", c.inbox("1"), nil, good, 0), nil, "belong to the broker"},
		{"$SYS. reply", wire.AppendPub(nil, wire.SysReqConn, "$SYS.x", nil, good, 0), nil, "reply topic"},
	}
	for _, e := range errs {
		c.send(e.frame, e.fds...)
		if we := c.expectErr(wire.CodeReservedTopic, e.text); we.Code.Fatal() {
			t.Fatalf("%s: ERR %v is fatal", e.name, we)
		}
	}
	file.Close()

	c.send(wire.AppendPub(nil, wire.SysReqPrefix+"nope", c.inbox("2"), nil, good, 0))
	c.expectStatus(c.inbox("2"), wire.StatusNoResponders, "")
	c.send(wire.AppendPub(nil, wire.SysReqConn, c.inbox("3"), nil, []byte("\x91\x01"), 0))
	c.expectStatus(c.inbox("3"), wire.StatusBadRequest, "not a msgpack map")
	c.send(wire.AppendPub(nil, wire.SysReqConn, c.inbox("4"), nil, []byte("\x80"), 0))
	c.expectStatus(c.inbox("4"), wire.StatusBadRequest, `no "conn_id"`)
	large := wire.AppendPub(nil, wire.SysReqConn, c.inbox("5"), nil, make([]byte, 1<<20), 0)
	c.send(large)
	c.expectStatus(c.inbox("5"), wire.StatusBadRequest, "at most")
	c.connRequest(0, c.inbox("6")) // connection 0 is the broker itself, no connection
	c.expectStatus(c.inbox("6"), wire.StatusNotFound, "no connection has id 0")
	c.connRequest(1<<40, c.inbox("7"))
	c.expectStatus(c.inbox("7"), wire.StatusNotFound, "")

	// A connection that has just closed is unknown at once.
	gone := connectRaw(t, path)
	goneID := gone.info.ConnID
	gone.sock.Close()
	waitFor(t, "the closed connection to be forgotten", func() bool { return srv.connByID(goneID) == nil })
	c.connRequest(goneID, c.inbox("8"))
	c.expectStatus(c.inbox("8"), wire.StatusNotFound, fmt.Sprint(goneID))

	// Still served, and every descriptor sent or answered is closed.
	c.connRequest(id, c.inbox("9"))
	if f, status, _ := c.nextAnswer(c.inbox("9")); status != "" || f.NFDs != 1 {
		t.Fatalf("answer: status %q, %d fds", status, f.NFDs)
	}
	fds, _ := c.sock.TakeFDs(1)
	unix.Close(fds[0])
	c.sync()
	c.sock.Close()
	waitFDs(t, base)
}

// A request whose answer's pidfd the requester's user has no room for is
// answered 429, naming the budget, without the descriptor; the connection
// carries on.
func TestConnRequestOverBudgetGets429(t *testing.T) {
	srv, path := testBroker(t, func(c *Config) {
		// The pool holds the connection's own two descriptors and no more.
		c.MaxFDs, c.MaxConns, c.User.Conns = fdsPerConn, 1, 1
	})
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.connRequest(c.info.ConnID, c.inbox("1"))
	c.expectStatus(c.inbox("1"), wire.StatusNoRoom, "descriptors")
	c.sync()
	if st := srv.Stats(); st.FDs != fdsPerConn {
		t.Fatalf("the broker holds %d descriptors; want the connection's %d", st.FDs, fdsPerConn)
	}
}

// A client that asks for pidfds in a loop and never reads its answers
// makes the broker hold a bounded number of them: its queue's descriptor
// limit, within its user's share of the pool at every moment. The rest
// are dropped (and closed), and everything is given back when it goes.
func TestConnRequestFloodIsBounded(t *testing.T) {
	const maxFDs = 512
	srv, path := testBroker(t, func(c *Config) {
		c.MaxFDs, c.MaxConns, c.User.Conns = maxFDs, 16, 16
		c.MaxPendingFDs = int(c.Limits.MaxFDs)
		c.WriteTimeout = time.Minute // it never reads: not closed for that here
	})
	target := connectRaw(t, path)
	flooder := connectRaw(t, path)
	flooder.sub(1, flooder.inbox(">"), "")
	flooder.sync()
	conns := srv.Stats().FDs // the two connections' own

	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() { // the pool's use, sampled while the flood runs
		var most int64
		defer func() { peak <- most }()
		for {
			most = max(most, srv.Stats().FDs)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	const n = 5000
	body, _ := wire.AppendBody(nil, &wire.ConnRequest{ConnID: target.info.ConnID})
	var batch []byte
	for i := range n {
		batch = wire.AppendPub(batch, wire.SysReqConn, flooder.inbox("x"), nil, body, 0)
		if len(batch) > 32<<10 || i == n-1 {
			flooder.send(batch)
			batch = batch[:0]
		}
	}
	waitFor(t, "every request to be answered", func() bool { return srv.Stats().Requests == n })
	close(stop)
	most := <-peak
	waitFor(t, "dropped answers' descriptors to be closed", func() bool {
		return srv.Stats().FDs-conns <= int64(srv.cfg.MaxPendingFDs)
	})
	st := srv.Stats()
	t.Logf("peak %d descriptors in the pool, %d held after the flood, %d answers dropped", most, st.FDs-conns, st.Dropped)
	// The only user holding some of the pool may take at most half of it
	// (the fair-share rule).
	if most > maxFDs/2 {
		t.Fatalf("the pool held %d descriptors; the flooding user's share is at most %d", most, maxFDs/2)
	}
	// Every request is accounted for once the flooder reads: answered
	// with a pidfd, answered 429 (no room in the share), or lost to the
	// queue's descriptor limit and counted in a gap notice (the last
	// notice comes once the queue has drained).
	var pidfds, noRoom, lost uint64
	var reasons []string
	for pidfds+noRoom+lost < n {
		f := flooder.next()
		status, _ := f.Headers.Get(wire.StatusHeader)
		_, notice := f.Headers.Get(wire.DroppedHeader)
		switch {
		case notice:
			n, reason := gapNotice(t, f)
			lost += n
			reasons = append(reasons, reason)
		case status == wire.StatusNoRoom && f.NFDs == 0:
			noRoom++
		case status == "" && f.NFDs == 1:
			pidfds++
			fds, err := flooder.sock.TakeFDs(1)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fds[0])
		default:
			t.Fatalf("unexpected answer: status %q, %d fds", status, f.NFDs)
		}
	}
	t.Logf("%d answers with a pidfd, %d without room, %d lost (%d gap notices)", pidfds, noRoom, lost, len(reasons))
	if pidfds+noRoom+lost != n {
		t.Fatalf("%d + %d + %d answers accounted for; want %d", pidfds, noRoom, lost, n)
	}
	flooder.sync() // and nothing more came
	if lost == 0 || !strings.Contains(strings.Join(reasons, " "), "descriptors is full") {
		t.Fatalf("no answer lost to the queue's descriptor limit (reasons %q)", reasons)
	}
	flooder.sock.Close()
	target.sock.Close()
	waitFor(t, "the ledger to be empty", func() bool {
		st := srv.Stats()
		return st.FDs == 0 && st.Users == 0 && st.Memory == 0
	})
}

// Asking the broker is publishing to the request's topic, as the policy
// sees it: a denied asker gets permission denied, and no answer.
func TestBrokerRequestsArePolicy(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "deny uid %me publish $SYS.req.>\nallow uid %me all >"))
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.connRequest(c.info.ConnID, c.inbox("1"))
	c.expectErr(wire.CodePermissionDenied, `publish to "$SYS.req.conn" denied by rule at line 1`)
	c.sync()
}
