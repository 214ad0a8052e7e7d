package bus

import (
	"io"
	"testing"

	"github.com/busd/busd/bus/wire"
)

// BenchmarkRoute is the broker's cost of routing one 16 B message to 1 and
// to 4 subscribers, with raw clients that only write and read bytes, and
// to 1 subscriber while another one that never reads is connected: what a
// stalled subscriber costs the others.
func BenchmarkRoute(b *testing.B) {
	for _, bc := range []struct {
		name    string
		subs    int
		stalled bool
	}{{"1sub", 1, false}, {"4subs", 4, false}, {"1sub+stalled", 1, true}} {
		subs := bc.subs
		b.Run(bc.name, func(b *testing.B) {
			_, path := testBroker(b, nil)
			if bc.stalled {
				stalled := connectRaw(b, path)
				stalled.sub(1, "route.>", "")
				stalled.sync()
			}
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
