package clientlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/busd/busd/bus/wire"
)

// Peer is what the broker knows of a connection: who holds it, as the
// kernel told the broker when it accepted it (SO_PEERCRED), and a pidfd of
// the process, which unlike the pid cannot come to name another process.
// Conn.Peer returns one; Verify and Exe use the pidfd to read about the
// process without being fooled by a recycled pid. docs/SECURITY.md,
// "Verifying a sender", says what each field guarantees.
type Peer struct {
	ConnID uint64 // the connection's id, as in Origin.Conn
	// PID, UID and GID are the process's credentials when it connected, as
	// in the Origin of its messages. PID is as the broker's pid namespace
	// sees it: 0 if the process is in one the broker cannot see.
	PID, UID, GID int
	// Name is the name the client gave itself in its handshake
	// (WithName), maybe empty: for people, since any client may give any
	// name.
	Name  string
	Since time.Time // when the broker accepted the connection
	// PidFD is a pidfd of the connection's process (see pidfd_open(2)),
	// owned by the Peer: Close closes it. It is nil when the broker has
	// none to give (Linux before 6.5).
	PidFD *os.File
}

// Close closes the Peer's pidfd, if it has one. It is safe to call more
// than once.
func (p *Peer) Close() error {
	if p.PidFD == nil {
		return nil
	}
	err := p.PidFD.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// Peer asks the broker who holds the connection with id connID (an
// Origin.Conn of a received message, say) and returns what it answers,
// with a pidfd of the connection's process; the caller must Close the Peer.
// It returns an error matching ErrNoSuchConn if no such connection is open,
// ErrNoRoom if the broker cannot hand over a descriptor to this user now,
// and ErrNoResponders if the broker serves broker requests but not this
// one. ctx bounds the whole exchange: a broker that predates broker
// requests refuses the request with an ERR (given to the error handler)
// and sends no answer.
//
// The answer is the broker's own (a "$SYS.req.conn" request, described in
// docs/PROTOCOL.md): no other client can forge it.
func (c *Conn) Peer(ctx context.Context, connID uint64) (*Peer, error) {
	body, err := wire.AppendBody(nil, &wire.ConnRequest{ConnID: connID})
	if err != nil {
		return nil, fmt.Errorf("bus: peer %d: %w", connID, err)
	}
	r, err := c.askBroker(ctx, wire.SysReqConn, body)
	if err != nil {
		return nil, err
	}
	p, err := peerFromAnswer(connID, r)
	if err != nil {
		r.CloseFiles()
		return nil, err
	}
	return p, nil
}

// peerFromAnswer reads the broker's answer to a "$SYS.req.conn" request
// for connection id.
func peerFromAnswer(id uint64, r *Msg) (*Peer, error) {
	if r.Origin.Conn != 0 {
		// Only the broker answers broker requests; trust no one else's.
		return nil, fmt.Errorf("bus: peer %d: the answer came from connection %d, not from the broker", id, r.Origin.Conn)
	}
	reason := r.Header.Get(wire.ReasonHeader)
	switch status := r.Header.Get(wire.StatusHeader); status {
	case "":
	case wire.StatusNotFound:
		return nil, fmt.Errorf("%w: %d", ErrNoSuchConn, id)
	case wire.StatusNoRoom:
		return nil, fmt.Errorf("%w: %s", ErrNoRoom, reason)
	case wire.StatusNoResponders:
		return nil, fmt.Errorf("%w: this broker does not answer %s", ErrNoResponders, wire.SysReqConn)
	default:
		return nil, fmt.Errorf("bus: peer %d: the broker answered status %s: %s", id, status, reason)
	}
	if len(r.Files) > 1 {
		return nil, fmt.Errorf("bus: peer %d: the answer carries %d descriptors; want at most one", id, len(r.Files))
	}
	var info wire.ConnInfo
	if err := wire.DecodeBody(r.Data, &info); err != nil {
		return nil, fmt.Errorf("bus: peer %d: %w", id, err)
	}
	p := &Peer{
		ConnID: info.ConnID, PID: int(info.PID), UID: int(info.UID), GID: int(info.GID),
		Name: info.Name, Since: time.Unix(0, int64(info.Since)),
	}
	if len(r.Files) == 1 {
		p.PidFD = r.Files[0]
	}
	return p, nil
}
