package bus

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

func TestAllowListAdmits(t *testing.T) {
	peer := unixsock.Cred{PID: 1, UID: 1000, GID: 100, Groups: []uint32{10, 27}}
	for _, tc := range []struct {
		uids, gids []uint32
		want       bool
	}{
		{nil, nil, true}, // no lists: everyone who can open the socket
		{[]uint32{1000}, nil, true},
		{[]uint32{1001}, nil, false},
		{nil, []uint32{100}, true}, // the primary gid
		{nil, []uint32{27}, true},  // a supplementary group
		{nil, []uint32{1000}, false},
		{[]uint32{1001}, []uint32{5, 27}, true},
		{[]uint32{0}, []uint32{0}, false}, // root only when listed
	} {
		if got := newAllowList(tc.uids, tc.gids).admits(peer); got != tc.want {
			t.Errorf("uids %v gids %v: admits(%+v) = %t; want %t", tc.uids, tc.gids, peer, got, tc.want)
		}
	}
}

// The refusal names the uid and every group once, the primary first, and
// stays short for a peer in thousands of groups.
func TestRefusalNamesTheUIDAndGroups(t *testing.T) {
	a := newAllowList([]uint32{1}, nil)
	e := a.refusal(unixsock.Cred{UID: 65534, GID: 65534, Groups: []uint32{100, 65534}})
	if e.Code != wire.CodePermissionDenied ||
		!strings.Contains(e.Text, "neither uid 65534 nor any of its groups (gid 65534, 100)") {
		t.Errorf("refusal = %v %q", e.Code, e.Text)
	}
	many := unixsock.Cred{UID: 7, GID: 7}
	for g := range uint32(1000) {
		many.Groups = append(many.Groups, 10_000+g)
	}
	e = a.refusal(many)
	if !strings.HasSuffix(e.Text, "10014 and 985 more); it serves only the uids and gids it lists") || len(e.Text) > 300 {
		t.Errorf("refusal of a peer in 1000 groups: %q", e.Text)
	}
}

// A connection the allow-lists do not admit gets one frame, a fatal ERR
// permission denied naming its uid and groups, in place of INFO, and is
// closed; it is counted and charged nothing: no account for its user, no
// memory, no descriptors.
func TestNotAllowedIsRefusedBeforeItCostsAnything(t *testing.T) {
	me, _ := ownIDs()
	srv, path := testBroker(t, func(c *Config) {
		c.AllowUIDs = []uint32{me + 1}
		c.AllowGIDs = []uint32{notMyGroup(t)}
	})
	before := srv.Stats()
	c := dialRaw(t, path)
	// A client says HELLO at once; the refusal may already be there.
	body, _ := wire.AppendBody(nil, &wire.Hello{Version: wire.Version, Name: t.Name()})
	c.sock.WriteWithFDs(wire.AppendControl(nil, wire.OpHello, 0, body), nil)
	e := c.expectErr(wire.CodePermissionDenied, fmt.Sprintf("neither uid %d nor any of its groups (gid %d", me, os.Getgid()))
	if e.Seq != 0 || e.Op != 0 {
		t.Errorf("the refusal is about frame %d (%v); want none: it comes before any frame is read", e.Seq, e.Op)
	}
	c.expectClosed()
	after := srv.Stats()
	if after.RefusedConns != before.RefusedConns+1 || after.NotAllowed != before.NotAllowed+1 {
		t.Errorf("refused %d, not allowed %d; want %d and %d",
			after.RefusedConns, after.NotAllowed, before.RefusedConns+1, before.NotAllowed+1)
	}
	if after.Users != 0 || after.Conns != before.Conns || after.Memory != before.Memory ||
		after.FDs != before.FDs || after.BudgetHits != before.BudgetHits {
		t.Errorf("after the refusal the broker holds %+v; before it %+v: want no user, and the same connections, memory, descriptors and budget hits",
			after, before)
	}
}

// A connection is served if its uid is listed, or its gid: then it gets
// INFO as usual.
func TestAllowedByUIDOrGIDIsServed(t *testing.T) {
	me, gid := ownIDs()
	for _, edit := range []func(*Config){
		func(c *Config) { c.AllowUIDs = []uint32{me} },
		func(c *Config) { c.AllowUIDs, c.AllowGIDs = []uint32{me + 1}, []uint32{gid} },
	} {
		srv, path := testBroker(t, edit)
		c := connectRaw(t, path) // fails the test on anything but INFO
		c.sync()
		if st := srv.Stats(); st.NotAllowed != 0 || st.Conns != 1 {
			t.Errorf("with uids %v gids %v: %d connections, %d not allowed; want 1 and 0",
				srv.cfg.AllowUIDs, srv.cfg.AllowGIDs, st.Conns, st.NotAllowed)
		}
	}
}

// ownIDs returns this process's uid and gid.
func ownIDs() (uid, gid uint32) { return uint32(os.Getuid()), uint32(os.Getgid()) }

// notMyGroup returns a gid this process is not in.
func notMyGroup(t *testing.T) uint32 {
	t.Helper()
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for g := 4242; ; g++ {
		if g != os.Getgid() && !slices.Contains(groups, g) {
			return uint32(g)
		}
	}
}
