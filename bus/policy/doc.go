// Package policy reads busd's access-control policy and decides, for one
// connection's identity, whether it may publish, subscribe, reply, listen,
// dial or monitor on a topic, or own a well-known name.
//
// A policy is a text file of rules, one a line, read top to bottom; the
// first rule that speaks for an action decides it:
//
//	# ACTION  WHO         VERBS              PATTERNS
//	allow     uid 1000    publish,subscribe  app.>  shared.>
//	deny      gid 100     publish            shared.admin.>
//	allow     any         all                user.%uid.>
//
// WHO is "uid N[,N…]", "gid N[,N…]" (a primary or supplementary group) or
// "any"; ids are numbers, never names, so a rule means the same whatever
// the name service says. VERBS is a comma-separated list of publish,
// subscribe, reply, listen, dial, monitor and own, or "all" for all but
// monitor (which must be named). PATTERNS are topic patterns (stream
// names for listen and dial, request topics for reply, names for own) in
// which %uid and %gid stand for the connection's uid and primary gid. A
// word starting with "#" starts a comment; a "#" inside a word, and a
// control character other than tab, are refused (see Parse).
//
// After the file's rules come those every policy ends with: the broker's
// own uid may do everything but monitor, every uid may subscribe to its
// own connections' events ("$SYS.conn.*.%uid.>", on patterns that start
// with "$SYS."), every uid may own well-known names, ask for them and
// about them, and watch them change owner ("$SYS.name.>"), and nobody
// else may do anything. Without a file, those are the policy: the
// single-user bus.
//
// docs/SECURITY.md is the user's guide to the format and to what each verb
// governs.
//
// # Goroutines and locks
//
// A Policy's rules and the Subjects made from it are never changed once
// made, so any number of goroutines may use them at once; a new policy is
// a new value. For keeps the Subjects it makes, by identity, under a
// mutex of the Policy's, held only around the map.
package policy
