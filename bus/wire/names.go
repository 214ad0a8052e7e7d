package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/busd/busd/topics"
)

// Well-known names (docs/PROTOCOL.md section 3.4). A connection asks the
// broker for a name; one connection owns it at a time, others may queue
// for it. A message on NamePrefix+name, or on a topic under it, goes only
// to the subscriptions of the connection that owns the name.
const (
	// NamePrefix starts the topics of well-known names: "_NAME.<name>"
	// and "_NAME.<name>.<more tokens>" reach the owner of the longest
	// owned name the rest of the topic equals or starts with.
	NamePrefix = "_NAME."
	// SysReqNameRequest asks for a name: a NameRequest answered with a
	// NameReply.
	SysReqNameRequest = SysReqPrefix + "name.request"
	// SysReqNameRelease gives a name up, or leaves its queue: a
	// NameRequest (flags ignored) answered with a NameReply.
	SysReqNameRelease = SysReqPrefix + "name.release"
	// SysReqNameOwner asks who owns a name: a NameRequest (flags
	// ignored) answered with a NameOwner.
	SysReqNameOwner = SysReqPrefix + "name.owner"
	// SysReqNames lists the names that have an owner or a queue: a
	// ListRequest ("after" ignored) answered with a NameList.
	SysReqNames = SysReqPrefix + "names"
	// SysNameOwner is the prefix of "$SYS.name.owner.<name>", published
	// with a NameEvent whenever the name changes owner.
	SysNameOwner = "$SYS.name.owner."
)

// The flags of a NameRequest, D-Bus's RequestName flags with D-Bus's
// values.
const (
	// NameAllowReplacement lets a later request with NameReplaceExisting
	// take the name from this owner.
	NameAllowReplacement uint8 = 0x1
	// NameReplaceExisting takes the name from an owner that allows
	// replacement.
	NameReplaceExisting uint8 = 0x2
	// NameDoNotQueue: if the name cannot be had now, do not queue for it
	// (and leave its queue if already in it); an owner with this flag
	// replaced loses the name instead of going to the head of the queue.
	NameDoNotQueue uint8 = 0x4
	// NameFlagsMask has every flag the broker knows; others are refused.
	NameFlagsMask = NameAllowReplacement | NameReplaceExisting | NameDoNotQueue
)

// The results of a NameReply.
const (
	NamePrimaryOwner = "primary_owner" // the requester owns the name now
	NameInQueue      = "in_queue"      // the requester is in the name's queue
	NameExists       = "exists"        // someone else owns it, and the requester did not queue
	NameAlreadyOwner = "already_owner" // the requester owned it already (its flags are updated)
	NameReleased     = "released"      // the requester owned it, or was in its queue, and is no longer
	NameNonExistent  = "non_existent"  // nobody owns the name, nor queues for it
	NameNotOwner     = "not_owner"     // others own or queue for it; the requester does neither
)

// The bounds of a name: at most MaxOwnedNameLen bytes and MaxOwnedNameTokens
// tokens, so that its topics ("_NAME.<name>.…", "$SYS.name.owner.<name>")
// stay valid topics.
const (
	MaxOwnedNameLen    = 255
	MaxOwnedNameTokens = 32
)

// ErrBadName matches the errors ValidName returns.
var ErrBadName = errors.New("wire: invalid name")

// ValidName checks a well-known name: a valid topic without wildcard
// tokens, at most MaxOwnedNameLen bytes and MaxOwnedNameTokens tokens, not starting
// with "$" or "_".
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrBadName)
	case len(name) > MaxOwnedNameLen:
		return fmt.Errorf("%w: %d bytes; a name is at most %d", ErrBadName, len(name), MaxOwnedNameLen)
	case name[0] == '$' || name[0] == '_':
		return fmt.Errorf("%w: %q starts with %q; names starting with $ or _ are reserved", ErrBadName, name, name[:1])
	case strings.Count(name, ".")+1 > MaxOwnedNameTokens:
		return fmt.Errorf("%w: %q has more than %d tokens", ErrBadName, name, MaxOwnedNameTokens)
	}
	if err := topics.ValidTopic(name); err != nil {
		return fmt.Errorf("%w: %v", ErrBadName, err)
	}
	if !topics.IsLiteral(name) {
		return fmt.Errorf("%w: %q has a wildcard token", ErrBadName, name)
	}
	return nil
}

// NameRequest is the payload of SysReqNameRequest, SysReqNameRelease and
// SysReqNameOwner: the msgpack map {"name": str, "flags": uint}, flags
// optional (0) and read only by SysReqNameRequest.
type NameRequest struct {
	Name  string `codec:"name"`
	Flags uint8  `codec:"flags"`
}

// NameIdentity is who a connection is, as the broker knows it: an owner
// or a queued requester of a name.
type NameIdentity struct {
	ConnID uint64 `codec:"conn_id"` // the connection's id, as in origins
	PID    uint32 `codec:"pid"`     // from SO_PEERCRED at accept, as in ConnInfo
	UID    uint32 `codec:"uid"`
	GID    uint32 `codec:"gid"`
	Name   string `codec:"name"` // HELLO's name, chosen by the client
}

// NameReply answers SysReqNameRequest and SysReqNameRelease.
type NameReply struct {
	Result string `codec:"result"` // one of the Name… results
	// Owner is the name's owner after the request (nil: none).
	Owner *NameIdentity `codec:"owner"`
	// Seq is the name's sequence number after the request: that of the
	// last NameEvent about it (see NameOwner.Seq).
	Seq uint64 `codec:"seq"`
}

// NameOwner answers SysReqNameOwner, and is one entry of a NameList.
type NameOwner struct {
	Name  string         `codec:"name"`
	Owner *NameIdentity  `codec:"owner"` // nil: nobody owns it
	Queue []NameIdentity `codec:"queue"` // who waits for it, next owner first
	// Seq orders this answer with the name's NameEvents: an event whose
	// Seq is not greater than it happened before the answer. The broker
	// numbers the owner changes of all names with one counter, so a
	// name's numbers only grow, even after it was forgotten.
	Seq uint64 `codec:"seq"`
}

// NameList answers SysReqNames: the names that have an owner or a
// queue, sorted, at most the request's limit of them.
type NameList struct {
	Names     []NameOwner `codec:"names"`
	Total     uint64      `codec:"total"`     // how many names there are
	Truncated bool        `codec:"truncated"` // Names holds fewer than Total
}

// NameEvent is the body of a SysNameOwner event.
type NameEvent struct {
	Name string        `codec:"name"`
	Old  *NameIdentity `codec:"old"` // nil: nobody owned it
	New  *NameIdentity `codec:"new"` // nil: nobody owns it now
	Seq  uint64        `codec:"seq"` // see NameOwner.Seq
}

// DecodeNameRequest decodes a name request's payload: one msgpack map
// whose "name" is a string; "flags", if present, an unsigned integer.
// The error, matching ErrBadRequest, says what is wrong.
func DecodeNameRequest(b []byte) (NameRequest, error) {
	var req struct {
		Name  *string `codec:"name"`
		Flags uint64  `codec:"flags"`
	}
	if err := decodeRequestMap(b, &req); err != nil {
		return NameRequest{}, err
	}
	switch {
	case req.Name == nil:
		return NameRequest{}, fmt.Errorf("%w: the map has no \"name\"", ErrBadRequest)
	case req.Flags&^uint64(NameFlagsMask) != 0:
		return NameRequest{}, fmt.Errorf("%w: flags 0x%x: the flags are 0x1 (allow replacement), 0x2 (replace existing), 0x4 (do not queue)", ErrBadRequest, req.Flags)
	}
	if err := ValidName(*req.Name); err != nil {
		return NameRequest{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return NameRequest{Name: *req.Name, Flags: uint8(req.Flags)}, nil
}
