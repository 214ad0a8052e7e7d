// Package clientlib is the Go client of busd, the same-host message bus.
//
// Connect to a bus, publish bytes (and open files) to topics, and subscribe
// to patterns with a handler, a channel, or a Next(ctx) loop:
//
//	c, err := clientlib.Connect(ctx)             // the default bus of this user
//	sub, err := c.Subscribe("app.*.opened", func(m *clientlib.Msg) {
//		fmt.Println(m.Topic, string(m.Data))
//	})
//	err = c.Publish("app.editor.opened", []byte("hello"))
//
// A message may carry open files: the receiver gets its own descriptors of
// the same open files (a memfd, a pipe, a connected socket) as *os.File in
// Msg.Files, and owns them.
//
// # Finding a bus
//
// A bus named N listens on DIR/N.sock, where DIR is Dir() ($BUSD_DIR, else
// $XDG_RUNTIME_DIR/busd, else /tmp/busd-$UID), and its broker holds a lock
// on DIR/N.lock for as long as it runs: the lock, not the socket file,
// says whether the bus is up. Connect started before its bus waits for it
// until its context ends (WithNoWait: not at all), and then fails with
// ErrNoBus; it watches the socket's directory, or while that does not
// exist the nearest one above it, so the bus is found as soon as it
// publishes its socket. A stale socket, whose broker is gone, is dialed
// again when it changes, and otherwise after a backoff of at most 250 ms.
// Watch reports the buses of a directory coming up and going down:
//
//	events, err := clientlib.Watch(ctx, "") // Dir()
//	for ev := range events {
//		fmt.Println(ev.Name, ev.Socket, ev.Up)
//	}
//
// Both watch with fsnotify: one inotify instance and fsnotify's reader
// goroutine for as long as Connect waits, or until Watch's context ends;
// Watch adds one goroutine of its own, which alone holds its state, and
// closes its channel after the watch; and, for each bus up, a pidfd of its
// broker and a goroutine parked in Go's poller until the broker exits
// (which inotify would not report: a killed broker leaves its socket), all
// closed and ended before the channel closes. Neither takes a lock.
//
// # Request and reply
//
// Request publishes a message with a reply topic and waits for the first
// answer; a service answers with Msg.Respond:
//
//	c.Subscribe("math.double", func(m *clientlib.Msg) { m.Respond(double(m.Data)) })
//	reply, err := c.Request(ctx, "math.double", []byte("21"))
//
// Replies come back on one inbox subscription per connection, to the
// private inbox the broker gives it ("_INBOX.<conn id>.>"), made on the
// first request: only this connection receives what arrives there, and
// only a connection the request reached may answer it, once. Each request
// waits on its
// own last token, so any number of goroutines may have requests in flight
// on one Conn. If nothing subscribes to the request's topic the broker says
// so at once and Request returns ErrNoResponders, naming the topic; if
// subscribers exist but every one is too far behind to take the request,
// it returns ErrRequestDropped at once (retrying later may work). ctx
// bounds the wait, for the reply and for room to send the request; a reply
// that arrives after it ended is dropped (its files closed). Requests and
// replies carry files like any message.
//
// # Who sent a message
//
// Every received message carries its Origin, stamped by the broker from
// the publisher's socket credentials: its connection id, pid, uid and gid,
// which no client can forge. A pid is reused once its process has exited,
// so a receiver that acts on the process (reads its executable, signals
// it, asks polkit about it) asks the broker for a pidfd instead: Conn.Peer
// returns who holds a connection with a pidfd of its process, and
// Peer.Exe and Peer.Verify read /proc through it without being fooled by
// a recycled pid:
//
//	p, err := c.Peer(ctx, m.Origin.Conn) // ErrNoSuchConn once it has closed
//	defer p.Close()
//	exe, err := p.Exe() // ErrPeerExited if the process has gone
//
// docs/SECURITY.md, "Verifying a sender", says what each step guarantees.
//
// # Queue groups
//
// QueueSubscribe joins a queue group: each message goes to one member of
// every matching group, picked uniformly at random by the broker among
// the group's connections (and in turn among the members on one
// connection, which share one subscription at the broker), and to every
// plain subscriber too. Members may join and leave while messages flow: a
// message is never given to two members of a group, and a member that
// leaves with Subscription.Drain first handles the messages already on
// their way to it, so none is lost while a member remains. (Unsubscribe, or
// a connection that breaks, drops those in flight.)
//
// Any number of subscriptions on one Conn may share a pattern: without a
// group each gets every message, its own Msg and its own descriptors of
// the message's files.
//
// # Slow consumers
//
// A subscriber that falls behind its publishers cannot have every message
// held for it for ever. Each subscription chooses what happens then, its
// slow-consumer policy:
//
//   - drop, the default: delivery is at most once and in order, and every
//     loss is reported. A message the broker has no room for in the
//     connection's queue, or the subscription's own queue has no room for
//     (WithSubscriptionLimits), is dropped; Subscription.Dropped counts
//     both, and the error handler (WithErrorHandler) gets a *LostError,
//     matching ErrSlowConsumer, saying how many were lost where and why.
//     The broker tells the client of its losses with gap notices, which
//     never reach a handler, channel or Next.
//   - disconnect (DisconnectWhenSlow): nothing is lost silently. Rather than
//     drop a message for the subscription, the broker closes the
//     connection; it ends with an error matching ErrSlowConsumer.
//
// The other way round, a broker that stops reading cannot block a client
// for ever: Publish waits for room in the connection's pending output
// (WithPendingLimit) only until the broker has accepted nothing for the
// write timeout (WithWriteTimeout), after which the connection ends with
// ErrWriteTimeout and every waiting call returns. PublishContext and
// PublishMsgContext bound the wait with a context.
//
// # Typed payloads and headers
//
// PublishValue, RequestValue and Msg.RespondValue encode a Go value as
// msgpack, and Msg.Decode decodes one; such messages carry the header
// Content-Type: application/msgpack (EncodeValue lists how Go types map).
// Msg.SetValue makes a typed message that has headers of its own.
// Any message may carry headers in Msg.Header, a Header: key/value fields
// in order, where a key may repeat, as the protocol carries them.
// Header.Get returns a key's first value and Values all of them; Add, Set
// and Del work on a nil Header, so a message gets one with
//
//	m := &clientlib.Msg{Topic: "jobs.build", Data: data}
//	m.Header.Add("trace", "42")
//
// or Header: clientlib.HeaderOf("trace", "42"). Keys starting with "Bus-"
// belong to the bus itself: the broker sets Bus-Status: 503 on its
// no-responders answer, 429 on its answer to a request every responder
// was too far behind to take, and Bus-Dropped on its gap notices.
//
// # Streams
//
// Listen and DialStream open direct streams: the dialer makes a socketpair
// and sends one end through the bus to a listener of the stream's name,
// and from then on the two processes talk over their own Unix socket
// (*StreamConn, which embeds its *net.UnixConn), as fast as any socket. StreamListener is
// a net.Listener, so net/http, net/rpc or gRPC serve over it unchanged:
//
//	l, _ := c.Listen("web")
//	go http.Serve(l, handler)
//	conn, err := c.DialStream(ctx, "web") // ErrNoListener at once if nobody listens
//
// Topic streams carry bytes on a topic instead, from one TopicWriter to
// every TopicReader subscribed; a reader that misses part of the stream
// fails with ErrStreamGap rather than return bytes with a hole in them,
// as soon as it learns of the loss.
// MakeFile wraps either kind in buffered line and msgpack-value framing.
//
// # Large payloads
//
// A payload of any size up to the broker's limits goes through Publish
// (and Request, Respond, the Value forms, queue groups, topic streams)
// as it is: no size cliff. Over the large-payload threshold
// (DefaultLargePayloadThreshold, 512 KiB; WithLargePayloadThreshold), or
// over the broker's max_payload, the payload is not copied through the
// socket: Publish writes it into a new memfd with pwrite, seals it
// against any change, and sends the descriptor in its place (INFO
// max_fd_payload bounds its size). The broker hands every receiver a
// descriptor of the same memfd without reading it, and the receiver
// checks the seals and the size and reads the bytes with pread into
// memory of its own:
//
//	err := c.Publish("render.frame", frame) // 100 MiB: in a memfd
//	m, err := sub.Next(ctx)                 // m.Data: the 100 MiB, the receiver's
//
// Msg.Data is then ordinary Go memory the receiver owns: it may keep it,
// write it, let the collector free it (with ReuseMessages it is lent, as
// any Data is then, and its buffer serves a later payload). Reading with pread rather than mapping the memfd is measured, not a
// shortcut: 11 ms against 36 ms per 64 MiB here (page faults cost about
// 12 µs each), and a slice of a mapping would be valid only until it is
// unmapped, which the garbage collector cannot know. A receiver that
// passes the bytes on without reading them subscribes with PayloadFiles
// and gets the memfd itself as Msg.PayloadFile (its own, to close); a
// sender that has the payload in a memfd already (memfd.FromReader from
// a file, or one it wrote in place and sealed) publishes it as
// Msg.PayloadFile, with no copy at all.
//
// Who pays: the memfd's pages are the sender's memory (charged to its
// memory cgroup) until every receiver has closed its descriptor, which a
// receiver reading into Data does at once; the broker charges what it
// holds to the sender's uid while it routes a payload, then to each
// receiver's uid for that receiver's queued copy. The
// publisher pays the copy into the memfd, each receiver its copy out.
// Small payloads stay inline: a memfd costs system calls and page faults
// that copying a few kilobytes through the socket does not
// (docs/PAYLOADS.md has the measured sweep behind the threshold).
//
// Limits and errors: a payload over max_fd_payload, or over max_payload
// when the broker takes no memfds (or the threshold is negative), is
// refused by Publish with ErrTooLarge. Retained messages, requests to the
// broker and wills always go inline. A payload memfd that fails its check
// on arrival (not a memfd, not sealed, not the size announced) drops its
// message, closes its descriptors, and goes to the error handler as an
// error matching ErrBadPayload naming the subscription; the connection
// goes on (a reply's Request fails with it at once). A PayloadFile to
// publish that is not a sealed memfd is refused with ErrBadPayload before
// anything is sent. A receiver reads at most WithLargePayloadLimit bytes
// of one payload into memory (DefaultLargePayloadLimit, 1 GiB): a
// publisher can seal a sparse memfd that costs it nothing, so the bound
// that protects a receiver's memory is the receiver's; a larger payload is
// dropped unread and reported (ErrBadPayload and ErrTooLarge), unless the
// subscription takes PayloadFiles. A memfd waiting to be written counts against
// WithPendingLimit at its size, and one kept while reconnecting against
// WithReconnectBuffer: it is the publisher's memory until the broker has
// it.
//
// # Retained values and last wills
//
// PublishRetained asks the broker to keep a message as its topic's current
// value (empty data clears it), and a subscription made WithRetained gets
// the current values of the topics it matches first (Msg.Retained is true
// on them), then every later message, none missing and none twice:
//
//	c.PublishRetained("home.temperature", []byte("20.5"))
//	sub, err := c.SubscribeSync("home.*", clientlib.WithRetained())
//
// WithWill gives a connection a last will, which the broker publishes for
// it if it ends other than by Close (a crash, a kill, a cut connection);
// Connect sets it, every reconnect sets it again, and Close clears it:
//
//	c, err := clientlib.Connect(ctx, clientlib.WithWill("presence.editor", []byte("offline"), clientlib.WillRetained()))
//
// docs/PROTOCOL.md, section 3.5, has the rules and bounds.
//
// # Receiving without allocating
//
// A received Msg belongs to whoever receives it, so by default each one is
// a new allocation. A handler that only reads each message, and keeps
// nothing of it past its return, can subscribe with ReuseMessages: the
// connection then lends it Msgs and refills them, and receiving allocates
// nothing for the Msg and its Data. At millions of small messages a second that halves the cost of
// receiving (docs/PERFORMANCE.md); Msg.Clone keeps a lent message.
//
//	c.Subscribe("metrics.>", func(m *clientlib.Msg) { sum += len(m.Data) }, clientlib.ReuseMessages())
//
// # Reconnect
//
// A Conn survives its broker: when the connection drops for a reason other
// than Close (the broker stopped, was killed, or restarted; the socket
// broke; the broker stopped reading; it dropped this connection for falling
// behind), the Conn is Reconnecting (Conn.Status). It dials the same socket
// again, with the same options and trust checks, for as long as it takes,
// until Close: each redial waits for the bus as Connect does (watching its
// directory) for up to 5 seconds, and failed redials are spaced by a
// backoff of 10 ms doubling to 250 ms. Once
// connected it restores every subscription (plain, queue group members,
// stream listeners, the request inbox) before anything published meanwhile
// goes out, and is Connected again, with a new connection id and inbox
// (ConnID, Inbox). WithNoReconnect turns this off: the Conn then ends with
// the connection, as after Close but with the reason in Err.
//
// It does not reconnect after an error that would only happen again: a
// protocol violation by either side, a broker budget this client went over
// (CodeBudget), a broker that is not trusted or refuses this client.
//
// Across a reconnect delivery stays at most once. Messages published to
// the Conn's subscriptions while it was away are not delivered to it, and
// nothing marks the gap on each subscription: the disconnect and reconnect
// handlers (WithDisconnectHandler, WithReconnectHandler) say when it
// began and ended. Output queued and not yet written when the connection
// dropped is lost (the disconnect handler's error says how many bytes).
// Messages published while reconnecting are kept, up to WithReconnectBuffer
// bytes (each counted with its record; their files kept open), and sent
// after the subscriptions are restored; past the bound Publish fails at
// once with ErrReconnectBufferFull. None is lost without a word: the other
// clients come back at their own pace, so if the Conn has an error
// handler (WithErrorHandler) and the broker announces receipts, each of
// these asks the broker for one, and one that reached no subscription (or
// whose connection dropped again, or closed, before its receipt came)
// goes to the error handler as an *UndeliveredError holding the message
// (without its files), matching ErrNotDelivered (or ErrConnectionLost, or
// the Conn's end): publishing it again is the caller's choice. The Conn
// keeps each message until its receipt comes, a round trip after the
// reconnect; Close waits for them (within its second). A message that
// reached one subscriber counts as delivered, though another that was not
// back yet missed it, as it would have missed it had it subscribed later.
// A Request in flight when the connection drops
// fails at once with ErrConnectionLost (the responder may have handled it;
// sending it again is the caller's choice), as do Flush, Drain and a
// Respond to a request that came on the lost connection; a Request or
// Flush made while reconnecting waits for the reconnect, within its
// context. Close while reconnecting ends the reconnect at once and
// reports what was buffered as undelivered (ErrClosed).
//
// # Goroutines and locks
//
// A Conn is safe for use by many goroutines. While connected it runs two
// goroutines per connection to the broker: a reader, which parses
// incoming frames and queues each message on its subscription, and a
// writer, which owns the socket's write side and sends what was published
// since its last write in batches of up to wire.BatchMax bytes, one system
// call each. When the connection drops, these two return, and while
// reconnecting one more goroutine dials (with, while it waits for the bus,
// fsnotify's goroutine and inotify instance) and, once connected, starts a
// new reader and writer and returns.
// One goroutine runs the handlers (error, disconnect, reconnect, closed),
// one at a time and in order, holding no lock of the Conn, so a handler may
// call anything on it, Close included. A subscription with a handler or a
// channel has a goroutine of its own. Close waits for all of these but the
// handlers' and the subscriptions', which end once what they hold is
// handled.
//
// Locks are taken in this order: the Conn's mutex (output, status, the
// current connection), then its subscriptions' lock, then the request
// inbox's lock, then the handlers' queue lock; a subscription's queue
// locks are taken alone.
package clientlib
