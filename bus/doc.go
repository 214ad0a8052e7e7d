// Package bus is the busd broker: it accepts connections on a Unix socket,
// speaks the protocol of package wire, and routes every published message to
// the subscriptions whose patterns match its topic, file descriptors
// included.
//
// Each connection has exactly two goroutines. Its reader parses frames from
// a buffer that grows and shrinks with the traffic and routes each PUB
// itself: it looks the topic up in the shared topics.Index and appends a MSG
// frame to each receiver's pending output under that receiver's lock. Once
// the reader has parsed everything it has read, it wakes the writers of the
// connections that went from idle to busy. Each writer owns its socket's
// write side and sends everything pending in one sendmsg, with the
// descriptors of all the frames in it.
//
// Descriptors received with a PUB are reference-counted: one reference per
// pending copy, closed when the last copy has been written or dropped.
package bus
