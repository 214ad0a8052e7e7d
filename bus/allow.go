package bus

import (
	"fmt"
	"strings"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// allowList is Config.AllowUIDs and AllowGIDs as sets, made once by
// NewServer: a peer's groups are checked one by one, and a peer may have
// thousands. Both nil means everyone is allowed.
type allowList struct {
	uids, gids map[uint32]struct{}
}

func newAllowList(uids, gids []uint32) allowList {
	return allowList{uids: idSet(uids), gids: idSet(gids)}
}

// idSet returns ids as a set, nil for none.
func idSet(ids []uint32) map[uint32]struct{} {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[uint32]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return set
}

// admits reports whether the peer may connect: the lists are empty, its
// uid is on AllowUIDs, or its primary gid or one of its supplementary
// groups is on AllowGIDs.
func (a allowList) admits(c unixsock.Cred) bool {
	if a.uids == nil && a.gids == nil {
		return true
	}
	if _, ok := a.uids[uint32(c.UID)]; ok {
		return true
	}
	if a.gids == nil {
		return false
	}
	if _, ok := a.gids[uint32(c.GID)]; ok {
		return true
	}
	for _, g := range c.Groups {
		if _, ok := a.gids[g]; ok {
			return true
		}
	}
	return false
}

// maxNamedGIDs bounds the groups a refusal names: the ERR and the log line
// stay short for a peer with thousands.
const maxNamedGIDs = 16

// refusal returns the ERR for a peer the lists do not admit, naming its
// uid and groups.
func (a allowList) refusal(c unixsock.Cred) *wire.Error {
	gids := make([]uint32, 0, 1+len(c.Groups))
	gids = append(gids, uint32(c.GID))
	for _, g := range c.Groups {
		if g != uint32(c.GID) {
			gids = append(gids, g)
		}
	}
	var b strings.Builder
	for i, g := range gids[:min(len(gids), maxNamedGIDs)] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, g)
	}
	if len(gids) > maxNamedGIDs {
		fmt.Fprintf(&b, " and %d more", len(gids)-maxNamedGIDs)
	}
	return wire.Errorf(wire.CodePermissionDenied,
		"the broker's allow-list includes neither uid %d nor any of its groups (gid %s); it serves only the uids and gids it lists",
		c.UID, b.String())
}
