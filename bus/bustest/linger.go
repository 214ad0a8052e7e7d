package bustest

import (
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LingeringSocket returns a connected TCP socket on the loopback with
// SO_LINGER set to linger seconds and a send queue its peer never reads,
// and the socket's inode (to find it among a process's descriptors in
// /proc/PID/fd, as "socket:[inode]"). Closing the last descriptor of it
// blocks for the linger time: what a client can pass a broker to make it
// block in close(2). The peer is closed when the test ends.
func LingeringSocket(t testing.TB, linger int) (*os.File, uint64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept() // never reads
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	tcp := client.(*net.TCPConn)
	tcp.SetLinger(linger)
	tcp.SetWriteBuffer(4096)
	tcp.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for { // until the send queue is full
		if _, err := tcp.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	f, err := tcp.File()
	if err != nil {
		t.Fatal(err)
	}
	tcp.Close() // f is a duplicate: the socket stays open, and this close does not block
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return f, st.Ino
}
