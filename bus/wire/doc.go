// Package wire is the frame format that busd and its clients speak over a
// Unix stream socket. docs/PROTOCOL.md is its contract; this package is the
// Go implementation of it, shared by the broker and the client library.
//
// Every frame is a fixed 20-byte header in network byte order, then for MSG
// a 20-byte origin block, then the variable sections in order: topic, reply
// (for SUB: the queue group), headers, payload. The header says how long each
// section is and how many file descriptors travel with the frame, so a
// reader knows a frame's full size and its fds before reading any section,
// and checks every limit before allocating anything.
//
// Encoding appends to a caller's buffer and decoding returns views into one:
// neither allocates on the message path.
package wire
