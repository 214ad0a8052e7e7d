package main

// The allow-lists (-allow-uid, -allow-gid): a connection they do not admit
// reads exactly one frame, ERR permission denied, in place of INFO, and is
// closed, before the broker charges it anything. The clients are probes run
// as other users (access_test.go).

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/busd/busd/bus/bustest"
	"github.com/busd/busd/bus/wire"
)

// allowedUID is a second user the tests put on an allow-list.
const allowedUID = 4000

// A uid not on -allow-uid is refused with one frame, the ERR naming it and
// its groups, and the connection closes; a listed uid, and busd's own
// user when listed, are served. The refusal is logged.
func TestAllowListRefusesBeforeInfo(t *testing.T) {
	needRoot(t)
	b := bustest.StartWith(t, binDir, bustest.Options{Shared: true,
		Args: []string{"-allow-uid", fmt.Sprintf("0,%d", allowedUID)}})
	refusedByAllowList(t, "uid 65534", probeAs(t, b, "raw",
		syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{otherGroup}}),
		fmt.Sprintf("neither uid %d nor any of its groups (gid %d, %d)", otherUID, otherUID, otherGroup))
	admitted(t, "a listed uid", probeAs(t, b, "raw", syscall.Credential{Uid: allowedUID, Gid: allowedUID}))
	b.Connect(t, "root").Close()
	b.WaitLog(t, `msg="refused connection" reason="the broker's allow-list includes neither uid 65534`, watchdog)
}

// -allow-gid admits a uid through its primary group or a supplementary one,
// and refuses everyone else, root included.
func TestAllowListAdmitsBySupplementaryGroup(t *testing.T) {
	needRoot(t)
	b := bustest.StartWith(t, binDir, bustest.Options{Shared: true,
		Args: []string{"-allow-gid", fmt.Sprint(busGroup)}})
	admitted(t, "a supplementary member", probeAs(t, b, "raw",
		syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{otherGroup, busGroup}}))
	admitted(t, "a primary member", probeAs(t, b, "raw", syscall.Credential{Uid: thirdUID, Gid: busGroup}))
	refusedByAllowList(t, "a user in another group", probeAs(t, b, "raw",
		syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{otherGroup}}),
		fmt.Sprintf("neither uid %d nor any of its groups (gid %d, %d)", otherUID, otherUID, otherGroup))
	var we *wire.Error
	if err := b.Dial(t).Hello("root"); !errors.As(err, &we) || we.Code != wire.CodePermissionDenied {
		t.Errorf("root, not listed: HELLO answered %v; want ERR permission denied", err)
	}
}

// The allow-list comes before every budget: with the broker serving all
// the connections it may, a peer that is not allowed is still told it is
// not allowed (and not that the broker is full), and its refusals leave
// nothing behind.
func TestNotAllowedComesBeforeTheBudgets(t *testing.T) {
	needRoot(t)
	// Two connections in all, one per uid: root's and the attacker's
	// (allowedUID) fill the broker.
	b := bustest.StartWith(t, binDir, bustest.Options{Shared: true,
		Args: []string{"-max-conns", "2", "-allow-uid", fmt.Sprintf("0,%d", allowedUID)}})
	fds := b.FDs(t)
	held := b.Connect(t, "root")

	cmd := attackerAs(t, b.Socket(), allowedUID)
	attacker := startChild(t, cmd)
	var rep attackReport
	attacker.report(t, &rep)
	if rep.Opened != 1 || rep.Err.Code != wire.CodeTooManyConns {
		t.Fatalf("uid %d: %+v; want 1 connection, then too many connections", allowedUID, rep)
	}
	// Full now: root's next connection is refused for the broker's limit.
	var we *wire.Error
	if err := b.Dial(t).Hello("root again"); !errors.As(err, &we) || we.Code != wire.CodeTooManyConns {
		t.Fatalf("a third connection: HELLO answered %v; want ERR too many connections", err)
	}
	for i := range 3 {
		refusedByAllowList(t, fmt.Sprintf("uid %d, attempt %d", otherUID, i+1),
			probeAs(t, b, "raw", syscall.Credential{Uid: otherUID, Gid: otherUID}),
			fmt.Sprintf("neither uid %d", otherUID))
	}
	held.Sync() // the connections it holds are served all along
	attacker.end(t, cmd)
	held.Close()
	b.WaitFDsWithin(t, fds, settleTimeout)
}
