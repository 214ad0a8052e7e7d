package clientlib

import "golang.org/x/sys/unix"

// CutForExample ends c's connection as a crash would, without a word to
// the broker, for the examples (package clientlib_test).
func CutForExample(c *Conn) {
	c.mu.Lock()
	f, err := c.sess.sock.File()
	c.mu.Unlock()
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if err := unix.Shutdown(int(f.Fd()), unix.SHUT_RDWR); err != nil {
		panic(err)
	}
}
