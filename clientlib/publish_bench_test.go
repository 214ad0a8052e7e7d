package clientlib

import (
	"context"
	"testing"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// sinkBroker answers the handshake and PINGs and discards every other
// frame: what is left to measure is the client's publishing.
func sinkBroker(b *testing.B) (path string, stop func()) {
	return benchBroker(b, func(sock *unixsock.Conn, in *wire.Reader) {
		for {
			f, err := in.Next(nil)
			if err != nil {
				return
			}
			if f.Op == wire.OpPing {
				sock.Write(wire.AppendControl(nil, wire.OpPong, f.ID, nil))
			}
		}
	})
}

// BenchmarkPublish is the client's cost per message published: checks,
// encoding into the pending output, and the writer's share of the write.
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{16, 1024} {
		name := map[int]string{16: "16B", 1024: "1KiB"}[size]
		b.Run(name, func(b *testing.B) {
			path, stop := sinkBroker(b)
			defer stop()
			c, err := Connect(context.Background(), WithSocket(path))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			data := make([]byte, size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := c.Publish("bench.topic", data); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}
