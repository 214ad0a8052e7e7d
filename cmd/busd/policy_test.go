package main

// Access control across users: a client of another uid, on a socket every
// user may open, does only what the policy lets it (docs/SECURITY.md,
// "Access control").

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
	"golang.org/x/sys/unix"
)

// policyChildEnv, set, makes the test binary the other user's client of
// runPolicyChild instead of running tests.
const policyChildEnv = "BUSD_TEST_POLICY_CHILD"

// victimInboxEnv names the inbox of one of the test's connections, for
// the other user to try to read and write.
const victimInboxEnv = "BUSD_TEST_VICTIM_INBOX"

// policyReport is what the other user's client tells the test.
type policyReport struct {
	Errs  []wire.Error // the ERRs its first frames got, in order
	Msgs  []string     // the topics of the messages it got meanwhile
	Topic string       // the message it received after "go"
	NFDs  int          // and its descriptors
	Fail  string
}

// runPolicyChild subscribes to everything and to root's private topics,
// publishes there and in its own subtree, listens on and dials a stream,
// subscribes to and forges a reply into a connection's inbox, reports the
// ERRs, and then, told "go" on stdin, reports the next message it
// receives.
func runPolicyChild() int {
	rep := policyChild()
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

func policyChild() *policyReport {
	rep := &policyReport{}
	c, err := bustest.DialRaw(os.Getenv(policyChildEnv))
	if err == nil {
		err = c.Hello("other-user")
	}
	if err != nil {
		rep.Fail = err.Error()
		return rep
	}
	me := os.Getuid()
	var b []byte
	b = wire.AppendSub(b, 1, ">", "", 0)
	b = wire.AppendSub(b, 2, "private.>", "", 0)
	b = wire.AppendPub(b, "private.x", "", nil, []byte("forged"), 0)
	b = wire.AppendPub(b, fmt.Sprintf("user.%d.hi", me), "", nil, []byte("hello"), 0)
	b = wire.AppendSub(b, 3, c.Info.Inbox+".>", "", 0)
	b = wire.AppendSub(b, 4, wire.GroupOnlyPrefix+"admin", wire.StreamGroup, 0)
	b = wire.AppendPub(b, wire.GroupOnlyPrefix+"admin", c.Info.Inbox+".1", nil, nil, 0)
	victim := os.Getenv(victimInboxEnv)
	b = wire.AppendSub(b, 5, victim+".>", "", 0)
	b = wire.AppendPub(b, victim+".1", "", nil, []byte("forged reply"), 0)
	b = wire.AppendControl(b, wire.OpPing, 1, nil)
	if err := c.Write(b); err != nil {
		rep.Fail = err.Error()
		return rep
	}
	for {
		f, err := c.Read(bustest.NextTimeout)
		if err != nil {
			rep.Fail = err.Error()
			return rep
		}
		if f.Op == wire.OpPong {
			break
		}
		if f.Op == wire.OpMsg {
			rep.Msgs = append(rep.Msgs, string(f.Topic))
			continue
		}
		e, err := bustest.DecodeErr(f)
		if err != nil {
			rep.Fail = fmt.Sprintf("got %v %q; want ERR or PONG", f.Op, f.Topic)
			return rep
		}
		rep.Errs = append(rep.Errs, e)
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	rep.Errs = nil
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		return rep
	}
	f, err := c.Read(bustest.NextTimeout)
	if err != nil {
		rep.Fail = err.Error()
		return rep
	}
	rep.Topic, rep.NFDs = string(f.Topic), int(f.NFDs)
	return rep
}

// With a socket every user may open and no policy, another uid connects
// and may do nothing; with a policy giving every user a subtree and this
// one the public topics, it does that and no more: its subscription to
// ">" gets the public message and not root's private one, nor its file.
func TestPolicyAcrossUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run a client as another uid (CI runs as root)")
	}
	t.Run("default", func(t *testing.T) {
		b := start(t, bustest.Options{Shared: true})
		rep, other := runOtherUser(t, b)
		want := []string{
			`subscription to ">" denied by the default rule (deny any`,
			`subscription to "private.>" denied by the default rule`,
			`publish to "private.x" denied by the default rule`,
			fmt.Sprintf(`publish to "user.%d.hi" denied by the default rule`, otherUID),
			`listening on stream "admin" denied by the default rule`,
			`dial of stream "admin" denied by the default rule`,
			`subscription to another connection's inbox`,
			`no request with this reply topic was delivered to this connection`,
		}
		checkDenials(t, rep, want)
		io.WriteString(other.stdin, "stop\n")
	})
	t.Run("policy", func(t *testing.T) {
		policyForOtherUser(t, fmt.Sprintf("allow any all user.%%uid.>\nallow uid %d subscribe public.>\n", otherUID), nil)
	})
	// A gid rule applies to a supplementary group too (SO_PEERGROUPS).
	t.Run("supplementary-group", func(t *testing.T) {
		policyForOtherUser(t, "allow gid 4242 all user.%uid.>\nallow gid 4242 subscribe public.>\n", []uint32{4242})
	})
}

// policyForOtherUser runs busd with the policy text, which must let the
// other user (with the supplementary groups) use its subtree and subscribe
// to public.>, and checks what the other user's client may do.
func policyForOtherUser(t *testing.T, text string, groups []uint32) {
	file := filepath.Join(t.TempDir(), "busd.policy")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	b := start(t, bustest.Options{Shared: true, Args: []string{"-policy", file}})
	root := b.Subscribe(t, "root", "user.>", "", 0)
	rep, other := runOtherUser(t, b, groups...)
	checkDenials(t, rep, []string{
		`subscription to "private.>" denied by the default rule`,
		`publish to "private.x" denied by the default rule`,
		`listening on stream "admin" denied by the default rule`,
		`dial of stream "admin" denied by the default rule`,
		`subscription to another connection's inbox`,
		`no request with this reply topic was delivered to this connection`,
	})
	if len(rep.Msgs) != 1 || rep.Msgs[0] != fmt.Sprintf("user.%d.hi", otherUID) {
		t.Errorf("the other user's \">\" got %q; want its own hello", rep.Msgs)
	}
	if f := root.Next(); string(f.Topic) != fmt.Sprintf("user.%d.hi", otherUID) || f.Origin.UID != otherUID {
		t.Fatalf("root got %q from uid %d; want the other user's hello", f.Topic, f.Origin.UID)
	}
	pub := b.Connect(t, "root-pub")
	fd := memfd(t)
	pub.Send(wire.AppendPub(nil, "private.x", "", nil, []byte("root only"), 1), fd)
	unix.Close(fd)
	pub.Pub("public.note", []byte("for all"))
	pub.Sync()
	io.WriteString(other.stdin, "go\n")
	last := &policyReport{}
	other.report(t, last)
	if last.Fail != "" || last.Topic != "public.note" || last.NFDs != 0 {
		t.Fatalf("the other user's \">\" got %+v; want public.note without descriptors (root's private.x filtered out)", last)
	}
}

func checkDenials(t *testing.T, rep *policyReport, want []string) {
	t.Helper()
	if rep.Fail != "" || len(rep.Errs) != len(want) {
		t.Fatalf("the other user's client got %+v; want %d denials", rep, len(want))
	}
	for i, e := range rep.Errs {
		if e.Code != wire.CodePermissionDenied || !strings.Contains(e.Text, want[i]) {
			t.Errorf("ERR %d: %v %q; want permission denied containing %q", i, e.Code, e.Text, want[i])
		}
	}
}

// runOtherUser starts runPolicyChild as otherUID, with the supplementary
// groups, against b and returns its first report.
func runOtherUser(t *testing.T, b *target, groups ...uint32) (*policyReport, *child) {
	t.Helper()
	victim := b.Connect(t, "victim")
	cmd := attackerAs(t, b.Socket(), otherUID)
	cmd.Env = []string{policyChildEnv + "=" + b.Socket(), victimInboxEnv + "=" + victim.Info.Inbox}
	cmd.SysProcAttr.Credential.Groups = groups
	c := startChild(t, cmd)
	rep := &policyReport{}
	c.report(t, rep)
	return rep, c
}
