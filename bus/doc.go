// Package bus is the busd broker: it accepts connections on a Unix socket,
// speaks the protocol of package wire, and routes every published message to
// the subscriptions whose patterns match its topic, file descriptors
// included. docs/SECURITY.md states its resource model: every byte and
// descriptor it holds for a client is charged to a budget, publishers wait
// for slow receivers only within a bound, and every lost message is
// reported.
//
// # Goroutines
//
// Each connection has exactly two. Its reader parses frames and routes each
// PUB itself: it looks the topic up in the shared topics.Index and appends a
// MSG to each receiver's queue (a wire.Outbox) under that receiver's lock.
// It answers a broker request ("$SYS.req.NAME", sysreq.go) the same way,
// to its own connection's queue.
// Once it has handled everything it has read, it wakes the writers of the
// connections that went from idle to busy, and waits, within its stall
// budget, for receivers it left behind (pace.go); after a batch that
// routed descriptors it also waits, at most FrameTimeout, for its user's
// share of the broker's descriptors to have room for another read
// (fdpace.go); and a PUB whose payload is in a memfd that would take its
// user past its held-payload budget waits, at most FrameTimeout, for some
// of the user's held payloads to be given back (payload.go). It holds no lock while it
// waits. Each writer owns its
// socket's write side, through a wire.Sender whose token a router may also
// take for a moment to write a small batch to an idle connection itself.
//
// Beside them: the accept loop of each Serve call, one closer goroutine
// (more, up to eight, while closes pile up) that closes descriptors the
// broker is done with, and with Config.ReclaimMemory one goroutine that
// returns freed memory to the system. A connection whose subscriptions
// lose messages while someone watches broker events has at most one timer
// (time.AfterFunc) armed to publish its drops event (dropevents.go); its
// finish stops it for good. A summary of log lines held back (connlog.go)
// is a timer too, which Shutdown logs itself. Shutdown stops all of them: it
// closes the listeners, tells every connection to drain, waits for the
// connection goroutines (aborting them when its context ends), and lets the
// closer finish what it can within the same context.
//
// # Locks
//
// In the order they may be taken:
//
//  0. conn.evMu: orders the events about one connection that two
//     goroutines may publish (its drops events and its down event); held
//     while they are routed, so before any conn.mu.
//  1. Server.mu: the set of connections and listeners. At the same level,
//     never together with it, Server.names.mu: the well-known names
//     (names.go); events about names, and requests held for an
//     activation, are queued under it, so conn.mu comes after it. The
//     Activator is never called under it.
//  2. conn.mu: a connection's queue, its accounting (pending bytes and
//     descriptors, grants, gaps), its reply permits and its state; its
//     subscription maps, which only its reader writes, under mu, so
//     that Server.SetPolicy can read them; and the storing of its policy
//     subject, so that a SUB is listed either before SetPolicy reviews
//     the subscriptions or under the policy it installs. A router takes
//     the receiver's; no goroutine holds two connections' locks at once.
//  3. ledger.mu: the budgets. Taken under conn.mu to grow or shrink a
//     connection's grant or its permits' charge; it never calls out.
//  4. closer.mu: the queue of descriptors to close. Releasing descriptors
//     under conn.mu only queues them.
//
// The store of retained values (retain.go) has a lock of its own,
// retainStore.mu: a retained PUB's router takes it alone, to replace the
// value (and charge the ledger under it); a SUB with retained values
// first takes it, in its own reader, before its own conn.mu (to queue the
// values) and the index's lock (to enter the index), so that both happen
// at once for retained PUBs. Nothing takes it under any other lock.
//
// The index has a lock of its own, taken by nothing else but under the
// store's lock as above. wire.Sender's token is waited for only with none
// of these held; under conn.evMu or Server.names.mu (an event, a held
// request being delivered) it is only tried (Sender.TryFlush), and then
// writes what the socket takes without waiting, so it blocks nobody. The
// take and sent callbacks it calls take conn.mu, which is why no conn.mu
// is held when it is tried. A broker request about another
// connection (sysreq.go) finds it under Server.mu and releases that before
// it takes the connection's conn.mu, alone, to read its name and state (a
// "$SYS.req.info" request takes Server.mu alone, to count connections);
// it charges the ledger and calls unixsock.Conn.DupPeerPidFD (whose lock
// is held only around the dup) with none of these held.
//
// # Who may connect
//
// The socket's file mode and group decide who may connect(2) at all; the
// Config's allow-lists (AllowUIDs, AllowGIDs) are checked next, on the
// credentials the kernel recorded for the peer, as soon as it is accepted.
// A connection they do not admit gets a fatal ERR permission denied in
// place of INFO and is closed before it is charged anything: only then are
// the budgets below asked, and then the handshake awaited.
//
// # Who may do what
//
// Each connection has a policy.Subject, the broker's policy applied to its
// uid and groups, swapped by SetPolicy (read atomically), and a private inbox,
// "_INBOX.<conn id>". The reader checks each PUB and SUB against them
// (access.go) after the grammar; a subscription the rules split carries a
// filter its deliveries are checked against, and a reply into another
// connection's inbox uses up a permit the request's router gave the
// replier under its lock (permits.go). Refusals are ERR permission
// denied, counted and logged once per connection.
//
// # Ownership of what is charged
//
// A connection's user (its uid, from SO_PEERCRED) is charged for the
// connection itself when it is accepted, for its subscriptions and its
// reply permits, for the
// pieces of a large frame it is sending and the descriptors it sent until
// they are routed, and, through grants, for everything queued for it to
// read. Descriptors routed to receivers stay in the broker's descriptor
// pool, on their sender's share, until the closer has closed them. The
// pidfd the broker duplicates to answer a "$SYS.req.conn" request is
// charged the same way to the requester's user, as if the requester had
// sent it: to its input descriptors until the answer is routed, and to its
// share of the pool until the closer has closed it.
//
// A retained value (retain.go) is charged to the user that published it
// last, in its retained values and bytes (and its share of the broker's
// memory), for as long as the broker keeps it, whether or not that user
// still has connections; a connection's last will (will.go) to its user's
// input bytes while it is set.
//
// A payload in a memfd (payload.go) is charged, in held payload bytes,
// to its publisher's user while the broker routes it (from when its PUB
// is accepted until every copy is queued, or a request held for an
// activation is delivered or fails: fdSet.holds), and to each receiver's
// user for that receiver's copy while it is queued (payloadCopy, the
// outbox's releaser for it, gives it back when the copy is written or
// dropped); a monitor's copy is a duplicate descriptor charged to the
// monitor's user until it is closed. Its pages are not the broker's, but
// its copies keep them alive.
package bus
