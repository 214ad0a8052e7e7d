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
// A Conn is safe for use by many goroutines. It runs two goroutines of its
// own: a reader, which parses incoming frames and queues each message on its
// subscription, and a writer, which owns the socket's write side and sends
// everything published since its last write in one system call.
package clientlib
