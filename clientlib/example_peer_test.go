package clientlib_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/busd/busd/bus"
	"github.com/busd/busd/clientlib"
)

// exampleBus runs a broker on a private socket for an example, and
// returns its path and how to stop it.
func exampleBus() (string, func()) {
	dir, err := os.MkdirTemp("", "ex") // short: sun_path is 108 bytes
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "ex.sock")
	srv, err := bus.NewServer(bus.DefaultConfig())
	if err != nil {
		panic(err)
	}
	l, err := bus.Listen(path)
	if err != nil {
		panic(err)
	}
	go srv.Serve(context.Background(), l)
	return path, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}
}

// A receiver finds out which program sent it a message: it asks the
// broker who holds the connection the message's origin names, and reads
// the executable through the pidfd it gets, so that a recycled pid cannot
// fool it.
func ExampleConn_Peer() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sender, err := clientlib.Connect(ctx, clientlib.WithSocket(path), clientlib.WithName("sender"))
	if err != nil {
		panic(err)
	}
	defer sender.Close()
	receiver, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer receiver.Close()
	sub, err := receiver.SubscribeSync("jobs.new")
	if err != nil {
		panic(err)
	}
	receiver.Flush(ctx)
	sender.Publish("jobs.new", []byte("rm -rf /tmp/cache"))
	m, err := sub.Next(ctx)
	if err != nil {
		panic(err)
	}

	// Who sent it?
	p, err := receiver.Peer(ctx, m.Origin.Conn)
	if err != nil {
		fmt.Println(err) // ErrNoSuchConn: the sender has gone
		return
	}
	defer p.Close()
	exe, err := p.Exe()
	if err != nil {
		fmt.Println(err) // ErrPeerExited: its pid may be another's by now
		return
	}
	self, _ := os.Executable() // here the sender is this very program
	fmt.Println(p.Name, p.PID == m.Origin.PID, exe == self)
	// Output: sender true true
}

// Verify reads anything of the peer's process under /proc, and then makes
// sure the process was still alive, so that what was read is its own.
func ExamplePeer_Verify() {
	path, stop := exampleBus()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := clientlib.Connect(ctx, clientlib.WithSocket(path))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	p, err := c.Peer(ctx, c.ConnID()) // this connection's own process
	if err != nil {
		panic(err)
	}
	defer p.Close()
	var cmdline []byte
	err = p.Verify(func(pid int) error {
		cmdline, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	fmt.Println(string(argv0) == os.Args[0])
	// Output: true
}
