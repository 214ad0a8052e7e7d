package bus

import (
	"os"
	"testing"
	"time"

	"github.com/busd/busd/bus/wire"
)

// A $SYS.req.info request is answered with the broker's identity, when it
// started, the connections it holds and the socket it listens on; a map
// payload is as good as none, anything else is 400.
func TestInfoRequestDescribesTheBroker(t *testing.T) {
	before := time.Now()
	srv, path := testBroker(t, nil)
	after := time.Now()
	other := connectRaw(t, path)
	other.sync()
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	mapBody, _ := wire.AppendBody(nil, map[string]int{"ignored": 1})
	for i, payload := range [][]byte{nil, mapBody} {
		c.send(wire.AppendPub(nil, wire.SysReqInfo, c.inbox("1"), nil, payload, 0))
		f, status, reason := c.nextAnswer(c.inbox("1"))
		if status != "" || f.NFDs != 0 {
			t.Fatalf("request %d: status %q (%s), %d fds; want the broker's info", i, status, reason, f.NFDs)
		}
		var info wire.BrokerInfo
		if err := wire.DecodeBody(f.Payload, &info); err != nil {
			t.Fatal(err)
		}
		started := time.Unix(0, int64(info.Started))
		if info.Server != srv.cfg.Name || info.Protocol != wire.Version || info.PID != uint32(os.Getpid()) ||
			info.UID != uint32(os.Getuid()) || info.Conns != 2 || len(info.Sockets) != 1 || info.Sockets[0] != path {
			t.Fatalf("request %d: %+v; want server %q, protocol %d, pid %d, uid %d, 2 connections, socket %s",
				i, info, srv.cfg.Name, wire.Version, os.Getpid(), os.Getuid(), path)
		}
		if started.Before(before) || started.After(after) {
			t.Errorf("started %v; want between %v and %v", started, before, after)
		}
	}
	c.send(wire.AppendPub(nil, wire.SysReqInfo, c.inbox("1"), nil, []byte{0x91, 0x01}, 0)) // an array
	c.expectStatus(c.inbox("1"), wire.StatusBadRequest, "not a msgpack map")
	c.sync()
}

// Asking the broker about itself is publishing to $SYS.req.info as the
// policy sees it.
func TestInfoRequestIsPolicy(t *testing.T) {
	_, path := testBroker(t, withPolicy(t, "deny uid %me publish $SYS.req.info\nallow uid %me all >"))
	c := connectRaw(t, path)
	c.sub(1, c.inbox(">"), "")
	c.send(wire.AppendPub(nil, wire.SysReqInfo, c.inbox("1"), nil, nil, 0))
	c.expectErr(wire.CodePermissionDenied, `publish to "$SYS.req.info" denied by rule at line 1`)
	c.sync()
}
