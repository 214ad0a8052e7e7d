package clientlib

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/busd/busd/bus/wire"
	"github.com/busd/busd/unixsock"
)

// benchBroker plays a broker for a benchmark: it answers one client's
// HELLO and hands the connection to serve, until stop.
func benchBroker(b *testing.B, serve func(sock *unixsock.Conn, in *wire.Reader)) (path string, stop func()) {
	path, l, remove := tempListener(b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lim := wire.DefaultLimits
		sock, in, err := acceptHello(l, &lim)
		if err != nil {
			return
		}
		defer sock.Close()
		serve(sock, in)
	}()
	return path, func() { remove(); <-done }
}

// fakeBroker answers the handshake and the first SUB, then writes MSG
// frames for that subscription as fast as the socket takes them, whole
// buffers at a time: what is left to measure is the client's receiving.
func fakeBroker(b *testing.B, payload int) (path string, stop func()) {
	return benchBroker(b, func(sock *unixsock.Conn, in *wire.Reader) {
		sub, err := in.Next(nil)
		if err != nil || sub.Op != wire.OpSub {
			return
		}
		pub := wire.Frame{Topic: []byte("bench.topic"), Payload: make([]byte, payload)}
		pub.TopicLen, pub.PayloadLen = uint16(len(pub.Topic)), uint32(payload)
		var batch []byte
		for len(batch) < 64<<10 {
			batch = wire.AppendMsg(batch, sub.ID, &wire.Origin{Conn: 2, PID: 3}, &pub)
		}
		for {
			if _, err := sock.Write(batch); err != nil {
				return
			}
		}
	})
}

// BenchmarkReceive is the client's cost per message received, the largest
// cost on a busy subscriber: reading, decoding, the Msg handed out, and
// the hand-over to the handler goroutine.
func BenchmarkReceive(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, reuse := range []bool{false, true} {
			name := map[int]string{16: "16B", 1024: "1KiB"}[size]
			var opts []SubOption
			if reuse {
				name += "-reuse"
				opts = append(opts, ReuseMessages())
			}
			b.Run(name, func(b *testing.B) { benchReceive(b, size, opts) })
		}
	}
}

func benchReceive(b *testing.B, size int, opts []SubOption) {
	path, stop := fakeBroker(b, size)
	defer stop()
	c, err := Connect(context.Background(), WithSocket(path), WithSubscriptionLimits(1<<20, 1<<30))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var n atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := c.Subscribe("bench.>", func(m *Msg) {
		if n.Add(1) == target {
			close(done)
		}
	}, opts...); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
}
