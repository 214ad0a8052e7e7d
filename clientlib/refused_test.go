package clientlib

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// A broker that refuses a connection may send its ERR and close before the
// client's HELLO goes out, so that the HELLO's write fails (EPIPE); the
// handshake still reports the ERR, which says why, not the broken pipe.
func TestRefusalBeforeHelloIsReported(t *testing.T) {
	a, b, err := unixsock.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	body, _ := wire.AppendBody(nil, wire.Errorf(wire.CodePermissionDenied, "not on the allow-list"))
	_, err = b.Write(wire.AppendControl(nil, wire.OpErr, 0, body))
	b.Close() // before the HELLO: its write fails
	if err != nil {
		t.Fatal(err)
	}
	s := &session{sock: a, lim: wire.Limits{MaxPayload: 1 << 20, MaxHeaders: 1 << 20}}
	s.in = wire.NewReader(a, &s.lim)
	_, err = s.handshake(testCtx(t), "")
	if !errors.Is(err, wire.CodePermissionDenied) || !strings.Contains(err.Error(), "not on the allow-list") {
		t.Fatalf("handshake = %v; want the broker's ERR permission denied", err)
	}
}

// Connect to a broker whose allow-list leaves this process out fails with
// the broker's permission denied, naming the uid.
func TestConnectNotOnTheAllowList(t *testing.T) {
	path, _ := startBusWith(t, func(c *bus.Config) { c.AllowUIDs = []uint32{uint32(os.Getuid()) + 1} })
	for range 20 { // the ERR can beat the HELLO or follow it; both say why
		_, err := Connect(context.Background(), WithSocket(path))
		if !errors.Is(err, wire.CodePermissionDenied) || !strings.Contains(err.Error(), "neither uid") {
			t.Fatalf("Connect = %v; want ERR permission denied naming the uid", err)
		}
	}
}
