package bus

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/busd/busd/bus/policy"
	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/topics"
)

// SetPolicy replaces the access-control policy (nil: the default rules
// alone) for every connection, open ones included: their next actions are
// decided by it, and their subscriptions are decided again at once, so one
// the new policy denies receives nothing more and one it narrows receives
// only what it still allows. Calls may overlap: each connection ends up
// under the policy stored last.
func (s *Server) SetPolicy(p *policy.Policy) {
	s.mu.Lock()
	s.policy.Store(p)
	s.policyGen++
	gen := s.policyGen
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if h := s.cfg.hooks; h != nil && h.applyPolicy != nil {
			h.applyPolicy()
		}
		c.applyPolicy(p.For(c.identity, s.origin.UID), gen)
	}
}

// applyPolicy gives c the policy subject of SetPolicy's call number gen,
// and decides its subscriptions again under it, unless a later call has
// been here first: an earlier call that reaches c last must not put its
// policy back. Under c.mu, where a SUB is listed (subscribe), so a SUB is
// either listed before and reviewed here, or decided under sub.
func (c *conn) applyPolicy(sub *policy.Subject, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen < c.policyGen {
		return
	}
	c.policyGen = gen
	c.subject.Store(sub)
	for _, s := range c.subs {
		a, err := c.decideSub(sub, s.pattern, s.group, s.flags)
		if err != nil {
			a = &subAccess{denied: true}
		}
		s.access.Store(a)
	}
}

// subAccess is what the policy says about a subscription beyond that it
// was allowed; nil (the common case) means it receives every message its
// pattern matches, and no other connection's private replies.
type subAccess struct {
	denied  bool            // a new policy denies the whole pattern: it receives nothing
	filter  *policy.Subject // set: each topic is decided on its own
	monitor bool            // it sees the replies other connections' inboxes get
}

// admits reports whether m may be delivered to s: it is not another
// connection's private reply (unless s monitors), and the policy lets s
// have its topic.
func (s *subscription) admits(m *outMsg) bool {
	if s.snapSeq != 0 && s.seenInSnapshot(m) {
		return false // retain.go
	}
	a := s.access.Load()
	if m.private != "" && s.c.inbox != m.private && (a == nil || !a.monitor) {
		return false
	}
	if m.named && s.c != m.owner && (a == nil || !a.monitor) {
		return false // a name's topic, and s is not its owner's (nameroute.go)
	}
	if a == nil {
		return true
	}
	if a.denied {
		return false
	}
	if a.filter != nil {
		topic := unsafe.String(unsafe.SliceData(m.pub.Topic), len(m.pub.Topic))
		return a.filter.Decide(policy.Subscribe, topic).Allow
	}
	return true
}

// inboxOf returns the inbox a topic under wire.InboxPrefix belongs to
// ("_INBOX.<id>"), or "" for any other topic or pattern.
func inboxOf(topic string) string {
	if !strings.HasPrefix(topic, wire.InboxPrefix) {
		return ""
	}
	rest := topic[len(wire.InboxPrefix):]
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		rest = rest[:i]
	}
	return topic[:len(wire.InboxPrefix)+len(rest)]
}

func inboxName(id uint64) string { return wire.InboxPrefix + strconv.FormatUint(id, 10) }

// deny is the ERR refusing an action the policy does not allow, naming
// the action, the topic and the rule. (replyErr counts and logs it.)
func (c *conn) deny(what, topic string, d policy.Decision) *wire.Error {
	return wire.Errorf(wire.CodePermissionDenied, "%s %q denied by %s of policy %s", what, topic, d.Rule, c.srv.policySource())
}

func (s *Server) policySource() string {
	if p := s.policy.Load(); p != nil {
		return p.Source
	}
	return "(none: the default rules)"
}

// checkPublish decides a PUB's topic and reply topic: a dial needs the
// dial verb on the stream's name, a reply to another connection's inbox an
// answer it may give (permits.go), anything else the publish verb; a reply
// topic under the inbox prefix must be the publisher's own inbox. It
// returns the inbox m goes to, if the topic is one.
func (c *conn) checkPublish(topic string, reply []byte) (private string, err error) {
	if len(reply) > 0 {
		if in := inboxOf(unsafe.String(unsafe.SliceData(reply), len(reply))); in != "" && in != c.inbox {
			return "", wire.Errorf(wire.CodePermissionDenied, "reply topic %q is in another connection's inbox; this connection's is %q", reply, c.inbox)
		}
	}
	sub := c.subject.Load()
	switch {
	case strings.HasPrefix(topic, wire.InboxPrefix):
		private = inboxOf(topic)
		if private == c.inbox {
			return private, nil
		}
		return private, c.usePermit(topic)
	case strings.HasPrefix(topic, wire.GroupOnlyPrefix):
		if !sub.Everything(policy.Dial) {
			name := topic[len(wire.GroupOnlyPrefix):]
			if d := sub.Decide(policy.Dial, name); !d.Allow {
				return "", c.deny("dial of stream", name, d)
			}
		}
	case !sub.Everything(policy.Publish):
		if d := sub.Decide(policy.Publish, topic); !d.Allow {
			return "", c.deny("publish to", topic, d)
		}
	}
	return "", nil
}

// decideSub decides a SUB under a policy subject, when it comes and when a
// new policy reviews the subscriptions there are, and returns what the
// subscription's deliveries must be checked against (nil: nothing). A
// refusal is a *wire.Error for the client. A monitor (flags has
// wire.SubMonitor) is decided as a plain SUB, also under _STREAM., where it
// is not a listener: it watches dials, and takes none.
func (c *conn) decideSub(sub *policy.Subject, pattern, group string, flags uint8) (*subAccess, error) {
	if in := inboxOf(pattern); in != "" && topics.IsLiteral(in) {
		if in == c.inbox {
			return nil, nil // its own: no policy stands between a connection and its replies
		}
		if d, filtered := sub.DecidePattern(policy.Monitor, pattern); !d.Allow || filtered {
			return nil, c.deny("subscription to another connection's inbox", pattern, d)
		}
	}
	if strings.HasPrefix(pattern, wire.GroupOnlyPrefix) && flags&wire.SubMonitor == 0 {
		return nil, c.decideListen(sub, pattern, group)
	}
	if strings.HasPrefix(pattern, wire.NamePrefix) && flags&wire.SubMonitor == 0 {
		return nil, c.decideNameSub(sub, pattern) // nameroute.go
	}
	var a subAccess
	if !sub.Everything(policy.Subscribe) {
		d, filtered := sub.DecidePattern(policy.Subscribe, pattern)
		if !d.Allow {
			return nil, c.deny("subscription to", pattern, d)
		}
		if filtered {
			a.filter = sub
		}
	}
	if topics.Overlaps(pattern, wire.InboxPrefix+">") || topics.Overlaps(pattern, wire.NamePrefix+">") {
		d, filtered := sub.DecidePattern(policy.Monitor, pattern)
		a.monitor = d.Allow && !filtered
	}
	if a == (subAccess{}) {
		return nil, nil
	}
	return &a, nil
}

// decideListen decides a SUB to a stream's topic: a listener, which names
// exactly one stream and joins its one group of listeners.
func (c *conn) decideListen(sub *policy.Subject, pattern, group string) error {
	name := pattern[len(wire.GroupOnlyPrefix):]
	switch {
	case !topics.IsLiteral(pattern):
		return wire.Errorf(wire.CodeInvalidPattern, "pattern %q: a listener names one stream, without wildcards", pattern)
	case group != wire.StreamGroup:
		return wire.Errorf(wire.CodeInvalidGroup, "a listener on %q must be in queue group %q, not %q: a stream's listeners are one group, and a dial reaches one of them",
			pattern, wire.StreamGroup, group)
	case sub.Everything(policy.Listen):
		return nil
	}
	if d := sub.Decide(policy.Listen, name); !d.Allow {
		return c.deny("listening on stream", name, d)
	}
	return nil
}
