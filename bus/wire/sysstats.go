package wire

// Statistics requests (docs/PROTOCOL.md section 3.2). Their answers are
// bounded: a list holds at most MaxListLimit entries, and says whether
// more were left out.
const (
	// SysReqStats asks for the broker's totals: a request with an empty
	// payload (or any map, whose keys are ignored), answered with a
	// BrokerStats.
	SysReqStats = SysReqPrefix + "stats"
	// SysReqConns asks for the connections and their counters: a
	// ListRequest answered with a ConnList.
	SysReqConns = SysReqPrefix + "conns"
	// SysReqSubs asks for the patterns subscribed to and how many
	// subscriptions each has: a ListRequest answered with a SubList.
	SysReqSubs = SysReqPrefix + "subs"
)

// MaxListLimit is the most entries a ConnList or SubList holds, and the
// default limit: some 400 KiB for connections with the longest names.
const MaxListLimit = 1000

// ListRequest is the payload of a SysReqConns or SysReqSubs request: an
// empty payload, or the msgpack map {"after": uint, "limit": uint}, both
// optional. After (SysReqConns only) skips the connections with an id up
// to it, for paging; Limit (0: MaxListLimit) bounds the entries, and is
// lowered to MaxListLimit.
type ListRequest struct {
	After uint64 `codec:"after"`
	Limit uint64 `codec:"limit"`
}

// BrokerStats is the payload of the answer to a SysReqStats request: the
// broker's totals since it started, and what it holds now.
type BrokerStats struct {
	Conns     uint64 `codec:"conns"`      // connections open now, in handshake included
	Subs      uint64 `codec:"subs"`       // subscriptions now
	Users     uint64 `codec:"users"`      // uids with connections or holdings now
	MsgsIn    uint64 `codec:"msgs_in"`    // PUBs routed (broker requests not included)
	BytesIn   uint64 `codec:"bytes_in"`   // bytes of frames read from clients
	MsgsOut   uint64 `codec:"msgs_out"`   // MSGs queued for subscribers
	BytesOut  uint64 `codec:"bytes_out"`  // bytes written to clients
	Dropped   uint64 `codec:"dropped"`    // messages a subscriber's connection had no room for
	FDsPassed uint64 `codec:"fds_passed"` // descriptors received with PUBs
	FDsHeld   int64  `codec:"fds_held"`   // descriptors held now, two per connection included
	FDsMax    int64  `codec:"fds_max"`    // the broker's descriptor budget
	Memory    int64  `codec:"memory"`     // bytes held now, as charged to the memory budget
	MemoryMax int64  `codec:"memory_max"` // the broker's memory budget
	Requests  uint64 `codec:"requests"`   // broker requests answered
	Errors    uint64 `codec:"errors"`     // ERR frames sent
	Slow      uint64 `codec:"slow"`       // connections closed as slow consumers
	// FDPayloads counts PUBs whose payload was in a memfd (flag 0x02)
	// routed, BadPayloads those refused (bad payload); FDPayloadHeld is
	// the bytes of such payloads the broker holds descriptors of now.
	FDPayloads    uint64 `codec:"fd_payloads"`
	BadPayloads   uint64 `codec:"bad_payloads"`
	FDPayloadHeld int64  `codec:"fd_payload_held"`
}

// ConnStats is one connection of a ConnList.
type ConnStats struct {
	ConnID     uint64 `codec:"conn_id"`
	PID        uint32 `codec:"pid"` // as in ConnInfo
	UID        uint32 `codec:"uid"`
	GID        uint32 `codec:"gid"`
	Name       string `codec:"name"`
	Since      uint64 `codec:"since"`       // when accepted, in Unix nanoseconds
	Subs       uint64 `codec:"subs"`        // its subscriptions
	MsgsIn     uint64 `codec:"msgs_in"`     // PUBs it sent
	BytesIn    uint64 `codec:"bytes_in"`    // bytes of the frames it sent
	MsgsOut    uint64 `codec:"msgs_out"`    // MSGs queued for it
	BytesOut   uint64 `codec:"bytes_out"`   // bytes written to it
	Pending    uint64 `codec:"pending"`     // bytes queued for it now
	PendingFDs uint64 `codec:"pending_fds"` // descriptors queued for it now
	Dropped    uint64 `codec:"dropped"`     // messages its subscriptions lost
	IdleMS     uint64 `codec:"idle_ms"`     // milliseconds since the broker last read from it
}

// ConnList is the payload of the answer to a SysReqConns request.
type ConnList struct {
	// All says the list covers every uid's connections; false, only
	// the asker's uid's.
	All bool `codec:"all"`
	// Conns are the connections, by id.
	Conns []ConnStats `codec:"conns"`
	// Truncated says more connections follow the last one listed: ask
	// again with "after" its id.
	Truncated bool `codec:"truncated"`
}

// SubStats is one pattern, in one queue group or none, of a SubList.
type SubStats struct {
	Pattern string `codec:"pattern"`
	Group   string `codec:"group"` // "" for plain subscriptions
	Subs    uint64 `codec:"subs"`  // subscriptions to it in that group, monitors not included
	// Monitors counts the monitor subscriptions to the pattern (Group is
	// then ""): passive watchers, which no message waits for.
	Monitors uint64 `codec:"monitors"`
}

// SubList is the payload of the answer to a SysReqSubs request.
type SubList struct {
	All       bool       `codec:"all"` // as ConnList's
	Subs      []SubStats `codec:"subs"`
	Total     uint64     `codec:"total"`     // entries there are, listed or not
	Truncated bool       `codec:"truncated"` // Total is more than those listed
}

// DecodeListRequest decodes a SysReqConns or SysReqSubs request's
// payload: empty, or one msgpack map whose "after" and "limit", if
// present, are unsigned integers. Other keys are ignored. The error
// matches ErrBadRequest.
func DecodeListRequest(b []byte) (ListRequest, error) {
	var req ListRequest
	if len(b) == 0 {
		req.Limit = MaxListLimit
		return req, nil
	}
	var raw struct {
		After *uint64 `codec:"after"`
		Limit *uint64 `codec:"limit"`
	}
	if err := decodeRequestMap(b, &raw); err != nil {
		return req, err
	}
	if raw.After != nil {
		req.After = *raw.After
	}
	req.Limit = MaxListLimit
	if raw.Limit != nil && *raw.Limit > 0 && *raw.Limit < MaxListLimit {
		req.Limit = *raw.Limit
	}
	return req, nil
}
