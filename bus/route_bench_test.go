package bus

import (
	"io"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// BenchmarkRoute is the broker's cost of routing one 16 B message to 1 and
// to 4 subscribers, with raw clients that only write and read bytes.
func BenchmarkRoute(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run(map[int]string{1: "1sub", 4: "4subs"}[subs], func(b *testing.B) {
			_, path := testBroker(b, nil)
			msgSize := wire.HeaderLen + wire.OriginLen + len("route.test") + 16
			done := make(chan error, subs)
			for range subs {
				sub := connectRaw(b, path)
				sub.sub(1, "route.>", "")
				sub.sync()
				go func() {
					buf := make([]byte, 64<<10)
					want := b.N * msgSize
					for want > 0 {
						n, err := sub.sock.Read(buf[:min(len(buf), want)])
						if err != nil {
							done <- err
							return
						}
						want -= n
					}
					done <- nil
				}()
			}
			pub := connectRaw(b, path)
			var batch []byte
			for range 1000 {
				batch = wire.AppendPub(batch, "route.test", "", nil, []byte("0123456789abcdef"), 0)
			}
			b.ResetTimer()
			for sent := 0; sent < b.N; sent += 1000 {
				n := min(1000, b.N-sent)
				if _, err := pub.sock.Write(batch[:n*len(batch)/1000]); err != nil {
					b.Fatal(err)
				}
			}
			for range subs {
				if err := <-done; err != nil && err != io.EOF {
					b.Fatal(err)
				}
			}
		})
	}
}
